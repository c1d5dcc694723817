"""The database tables, as SQLAlchemy models: one module per table or two that belong together."""

from tracker.models.attachment import Attachment
from tracker.models.base import Base
from tracker.models.project import Membership, Project
from tracker.models.task import Task
from tracker.models.user import User

__all__ = ["Attachment", "Base", "Membership", "Project", "Task", "User"]

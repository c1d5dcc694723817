"""What a client may send and what it may see: the API's Pydantic schemas."""

from tracker.schemas.auth import Token
from tracker.schemas.project import MemberAdd, ProjectCreate, ProjectPublic
from tracker.schemas.task import AttachmentPublic, PushResult, TaskCreate, TaskPublic, TaskStatus, TaskUpdate
from tracker.schemas.user import UserCreate, UserPublic

__all__ = ["AttachmentPublic", "MemberAdd", "ProjectCreate", "ProjectPublic", "PushResult", "TaskCreate", "TaskPublic",
           "TaskStatus", "TaskUpdate", "Token", "UserCreate", "UserPublic"]

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from tracker.schemas.base import Id, InputModel, PublicModel, UtcDatetime


def not_in_the_past(value: date) -> date:
    # "Today" is the server's date in UTC, whatever the machine's own time zone.
    if value < datetime.now(timezone.utc).date():
        raise ValueError("due_date must be today or later")
    return value


TaskStatus = Literal["todo", "in_progress", "done"]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Priority = Annotated[int, Field(ge=1, le=5, strict=True)]
DueDate = Annotated[date, AfterValidator(not_in_the_past)]


class TaskCreate(InputModel):
    title: Title
    description: str | None = Field(default=None, max_length=2000)
    status: TaskStatus = "todo"
    priority: Priority = 3
    due_date: DueDate | None = None
    assignee_id: Id | None = None


class TaskUpdate(InputModel):
    title: Title | None = None
    description: str | None = Field(default=None, max_length=2000)
    status: TaskStatus | None = None
    priority: Priority | None = None
    due_date: DueDate | None = None
    assignee_id: Id | None = None

    @field_validator("title", "status", "priority")
    @classmethod
    def not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not set to null")
        return value


class TaskPublic(PublicModel):
    id: int
    project_id: int
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    due_date: date | None
    assignee_id: int | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PushResult(BaseModel):
    """What POST /tasks/{task_id}/push answers when the outside service took the event."""

    event: Literal["task.pushed"]
    status_code: int  # the outside service's own status, 2xx


class AttachmentPublic(PublicModel):
    id: int
    task_id: int
    filename: str
    content_type: str
    size: int  # bytes
    created_at: UtcDatetime

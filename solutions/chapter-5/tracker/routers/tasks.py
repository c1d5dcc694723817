"""Tasks, and what happens around them: events to the outside service, e-mail, attachments.

Every route here that uses the database is a plain `def`: SQLAlchemy's session is synchronous,
and FastAPI runs a `def` route in its thread pool, where a query blocks one thread and nothing
else. The one route that waits on the network, push_task, is `async def` and awaits the
app's shared client; its guard (MemberTask) is a `def` dependency, run in the thread pool too.
"""

from typing import Annotated

import httpx
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Response, UploadFile, status
from sqlalchemy import select

from tracker.config import Settings
from tracker.models import Attachment, Task, User
from tracker.schemas import AttachmentPublic, PushResult, TaskCreate, TaskPublic, TaskStatus, TaskUpdate
from tracker.shared.database import SessionDep
from tracker.shared.dependencies import LimitWrites, MemberProject, MemberTask
from tracker.shared.notifications import assignment_mail, post_event, send_event, send_mail, task_event
from tracker.shared.outside import HttpClient
from tracker.shared.settings import SettingsDep

# No prefix: a task is created and listed under its project, and read and changed on its own.
router = APIRouter(tags=["tasks"])


def announce_assignment(task: Task, session: SessionDep, http: httpx.AsyncClient, settings: Settings,
                        background: BackgroundTasks) -> None:
    """After the response: the task.assigned event, and an e-mail to the assignee (if that
    user exists: whether they do is still not checked when a task is assigned)."""
    background.add_task(send_event, http, settings, task_event("task.assigned", task))
    assignee = session.get(User, task.assignee_id)
    if assignee is not None:
        background.add_task(send_mail, assignment_mail(assignee.email, task, settings), settings)


@router.post("/projects/{project_id}/tasks", response_model=TaskPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[LimitWrites])
def create_task(payload: TaskCreate, project: MemberProject, session: SessionDep, http: HttpClient,
                settings: SettingsDep, background: BackgroundTasks):
    task = Task(**payload.model_dump(), project_id=project.id)
    session.add(task)
    session.flush()
    if task.assignee_id is not None:
        announce_assignment(task, session, http, settings, background)
    return task


@router.get("/projects/{project_id}/tasks", response_model=list[TaskPublic])
def list_tasks(
    project: MemberProject,
    session: SessionDep,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    query = select(Task).where(Task.project_id == project.id)
    if status is not None:
        query = query.where(Task.status == status)
    return session.scalars(query.order_by(Task.id).limit(limit).offset(offset)).all()


@router.get("/tasks/{task_id}", response_model=TaskPublic)
def get_task(task: MemberTask):
    return task


@router.patch("/tasks/{task_id}", response_model=TaskPublic, dependencies=[LimitWrites])
def update_task(payload: TaskUpdate, task: MemberTask, session: SessionDep, http: HttpClient,
                settings: SettingsDep, background: BackgroundTasks):
    changes = payload.model_dump(exclude_unset=True)
    assigned = changes.get("assignee_id") not in (None, task.assignee_id)
    completed = changes.get("status") == "done" and task.status != "done"
    for key, value in changes.items():
        setattr(task, key, value)
    session.flush()
    if assigned:
        announce_assignment(task, session, http, settings, background)
    if completed:
        background.add_task(send_event, http, settings, task_event("task.completed", task))
    return task


@router.post("/tasks/{task_id}/push", response_model=PushResult, dependencies=[LimitWrites])
async def push_task(task: MemberTask, http: HttpClient, settings: SettingsDep):
    """Send the task to the outside service now, and say what it answered."""
    try:
        response = await post_event(http, settings, task_event("task.pushed", task))
    except httpx.TimeoutException:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "The outside service did not answer in time") from None
    except httpx.HTTPStatusError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                            f"The outside service answered {exc.response.status_code}") from None
    except httpx.RequestError:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, "The outside service could not be reached") from None
    return PushResult(event="task.pushed", status_code=response.status_code)


@router.post("/tasks/{task_id}/attachments", response_model=AttachmentPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[LimitWrites])
def upload_attachment(file: UploadFile, task: MemberTask, session: SessionDep, settings: SettingsDep):
    # FastAPI has already received the upload (asynchronously, into a temporary file) before
    # this runs; reading it here is a local read. One byte more than the limit tells us it is over.
    limit = settings.max_attachment_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"An attachment may have at most {limit} bytes")
    attachment = Attachment(task_id=task.id, filename=file.filename, size=len(data), data=data,
                            content_type=file.content_type or "application/octet-stream")
    session.add(attachment)
    session.flush()
    return attachment


@router.get("/tasks/{task_id}/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}})
def download_attachment(attachment_id: int, task: MemberTask, session: SessionDep):
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.task_id != task.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Attachment not found")
    return Response(attachment.data, media_type=attachment.content_type)

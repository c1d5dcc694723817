from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from tracker.models import Task, User
from tracker.schemas import TaskCreate, TaskPublic, TaskStatus, TaskUpdate
from tracker.shared.database import SessionDep
from tracker.shared.dependencies import LimitWrites, MemberProject, MemberTask
from tracker.shared.notifications import send_assignment_mail, send_event, task_event

# No prefix: a task is created and listed under its project, and read and changed on its own.
router = APIRouter(tags=["tasks"])


@router.post("/projects/{project_id}/tasks", response_model=TaskPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[LimitWrites])
async def create_task(payload: TaskCreate, project: MemberProject, session: SessionDep):
    task = Task(**payload.model_dump(), project_id=project.id)
    session.add(task)
    session.flush()
    if task.assignee_id is not None:
        await send_event(task_event("task.assigned", task))
        assignee = session.scalars(select(User).where(User.id == task.assignee_id)).first()
        if assignee is not None:
            await send_assignment_mail(assignee.email, task)
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
def update_task(payload: TaskUpdate, task: MemberTask, session: SessionDep):
    for key, value in payload.model_dump(exclude_unset=True).items():
        setattr(task, key, value)
    session.flush()
    return task


@router.post("/tasks/{task_id}/push")
async def push_task(task: MemberTask):
    """Send the task to the outside service now, and say what it answered."""
    response = await send_event(task_event("task.pushed", task))
    return {"event": "task.pushed", "status_code": response.status_code}

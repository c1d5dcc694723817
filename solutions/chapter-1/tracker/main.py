"""Team task tracker after Chapter 1: every request and response goes through a schema.

Input schemas (`...Create`, `...Update`) say what a client may send; response schemas
(`...Public`) say what a client may see. ORM objects leave a handler only through a
`response_model`, so internal columns such as `hashed_password` or `invite_code` can
never reach the wire. Sessions, settings, logging and the blocking call are left for the
later chapters.
"""

import hashlib
import secrets
import time
from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

DATABASE_URL = "sqlite:///./tracker.db"
SECRET_KEY = "change-me-please-123"

engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False})
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    hashed_password: Mapped[str] = mapped_column(String(128))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(1000))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    invite_code: Mapped[str] = mapped_column(String(32), default=lambda: secrets.token_hex(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default="todo")
    priority: Mapped[int] = mapped_column(default=3)
    due_date: Mapped[date | None]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


Base.metadata.create_all(engine)


# --- Schemas: what a client may send, and what it may see --------------------------

def not_in_the_past(value: date) -> date:
    # "Today" is the server's date in UTC, whatever the machine's own time zone.
    if value < datetime.now(timezone.utc).date():
        raise ValueError("due_date must be today or later")
    return value


def as_utc(value: datetime) -> datetime:
    # SQLite keeps no time zone: what comes back from it is naive, though we stored UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Field types shared by the schemas, so every route applies the same rules.
TaskStatus = Literal["todo", "in_progress", "done"]
Title = Annotated[str, Field(min_length=1, max_length=200)]
# strict: a JSON integer only; Pydantic would otherwise turn "3" into 3 and true into 1.
Priority = Annotated[int, Field(ge=1, le=5, strict=True)]
Id = Annotated[int, Field(ge=1, strict=True)]
DueDate = Annotated[date, AfterValidator(not_in_the_past)]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class InputModel(BaseModel):
    """Base for request bodies: trim whitespace, and refuse fields we do not know."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicModel(BaseModel):
    """Base for responses: built from ORM objects, field by declared field."""

    model_config = ConfigDict(from_attributes=True)


# Fields a client sends to sign up; `is_admin` is not among them.
class UserCreate(InputModel):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=100)
    # Taken exactly as sent: spaces can be part of a password.
    password: Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]


# What anyone may see of a user.
class UserPublic(PublicModel):
    id: int
    email: str
    full_name: str
    created_at: UtcDatetime


class ProjectCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    owner_id: Id


# A project as clients see it: the invite code stays inside.
class ProjectPublic(PublicModel):
    id: int
    name: str
    description: str | None
    owner_id: int
    created_at: UtcDatetime


class TaskCreate(InputModel):
    title: Title
    description: str | None = Field(default=None, max_length=2000)
    status: TaskStatus = "todo"
    priority: Priority = 3
    due_date: DueDate | None = None
    assignee_id: Id | None = None


# Every field optional: a PATCH names only what it changes. Sending null is allowed
# only where the column is nullable.
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


app = FastAPI(title="Team task tracker")


def hash_password(password: str) -> str:
    return hashlib.sha256((SECRET_KEY + password).encode()).hexdigest()


@app.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(payload: UserCreate):
    session = SessionLocal()
    user = User(
        email=payload.email,
        full_name=payload.full_name,
        hashed_password=hash_password(payload.password),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        session.close()
        raise HTTPException(status.HTTP_409_CONFLICT, "A user with this email already exists")
    print("created user", user.id)
    session.close()
    return user


@app.get("/users", response_model=list[UserPublic])
def list_users():
    session = SessionLocal()
    users = session.scalars(select(User).order_by(User.id)).all()
    session.close()
    return users


@app.get("/users/{user_id}", response_model=UserPublic)
def get_user(user_id: int):
    session = SessionLocal()
    user = session.get(User, user_id)
    session.close()
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return user


@app.post("/projects", response_model=ProjectPublic, status_code=status.HTTP_201_CREATED)
def create_project(payload: ProjectCreate):
    session = SessionLocal()
    if session.get(User, payload.owner_id) is None:
        session.close()
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Owner not found")
    project = Project(**payload.model_dump())
    session.add(project)
    session.commit()
    print("created project", project.id)
    session.close()
    return project


@app.get("/projects/{project_id}", response_model=ProjectPublic)
def get_project(project_id: int):
    session = SessionLocal()
    project = session.get(Project, project_id)
    session.close()
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Project not found")
    return project


@app.post(
    "/projects/{project_id}/tasks",
    response_model=TaskPublic,
    status_code=status.HTTP_201_CREATED,
)
async def create_task(project_id: int, payload: TaskCreate):
    session = SessionLocal()
    project = session.get(Project, project_id)
    if project is None:
        session.close()
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Project not found")
    task = Task(**payload.model_dump(), project_id=project_id)
    session.add(task)
    session.commit()
    if task.assignee_id is not None:
        notify_assignee(task)
    session.close()
    return task


@app.get("/projects/{project_id}/tasks", response_model=list[TaskPublic])
def list_tasks(
    project_id: int,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    session = SessionLocal()
    if session.get(Project, project_id) is None:
        session.close()
        # The query parameter `status` hides the `status` module inside this function.
        raise HTTPException(404, "Project not found")
    query = select(Task).where(Task.project_id == project_id)
    if status is not None:
        query = query.where(Task.status == status)
    tasks = session.scalars(query.order_by(Task.id).limit(limit).offset(offset)).all()
    session.close()
    return tasks


@app.get("/tasks/{task_id}", response_model=TaskPublic)
def get_task(task_id: int):
    session = SessionLocal()
    task = session.get(Task, task_id)
    session.close()
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Task not found")
    return task


@app.patch("/tasks/{task_id}", response_model=TaskPublic)
def update_task(task_id: int, payload: TaskUpdate):
    session = SessionLocal()
    task = session.get(Task, task_id)
    if task is None:
        session.close()
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Task not found")
    for key, value in payload.model_dump(exclude_unset=True).items():
        setattr(task, key, value)
    session.commit()
    session.close()
    return task


def notify_assignee(task: Task) -> None:
    """Pretend to e-mail the assignee: a slow, blocking call (Chapter 4 deals with it)."""
    time.sleep(0.2)
    print("notified user", task.assignee_id, "about task", task.id)

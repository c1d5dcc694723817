"""Team task tracker: the "tutorial" version that the course starts from.

Everything here runs, and everything here is how a prototype grows up by accident:
dicts in, ORM objects out, a session opened by hand in every handler, settings and a
secret written into the code, print() for logs, and a blocking call inside an async
handler. Each chapter of the course fixes one of these.
"""

import hashlib
import secrets
import time
from datetime import date, datetime, timezone

from fastapi import FastAPI, HTTPException
from sqlalchemy import ForeignKey, String, create_engine, select
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

app = FastAPI(title="Team task tracker")


def hash_password(password: str) -> str:
    return hashlib.sha256((SECRET_KEY + password).encode()).hexdigest()


@app.post("/users")
def create_user(payload: dict):
    session = SessionLocal()
    password = payload.pop("password", "")
    user = User(**payload, hashed_password=hash_password(password))
    session.add(user)
    session.commit()
    print("created user", user.id)
    session.close()
    return user


@app.get("/users")
def list_users():
    session = SessionLocal()
    users = session.scalars(select(User)).all()
    session.close()
    return users


@app.get("/users/{user_id}")
def get_user(user_id: int):
    session = SessionLocal()
    user = session.get(User, user_id)
    session.close()
    return user


@app.post("/projects")
def create_project(payload: dict):
    session = SessionLocal()
    project = Project(**payload)
    session.add(project)
    session.commit()
    print("created project", project.id)
    session.close()
    return project


@app.get("/projects/{project_id}")
def get_project(project_id: int):
    session = SessionLocal()
    project = session.get(Project, project_id)
    session.close()
    return project


@app.post("/projects/{project_id}/tasks")
async def create_task(project_id: int, payload: dict):
    session = SessionLocal()
    project = session.get(Project, project_id)
    if project is None:
        raise HTTPException(status_code=404, detail="Project not found")
    if "due_date" in payload and isinstance(payload["due_date"], str):
        payload["due_date"] = date.fromisoformat(payload["due_date"])
    task = Task(**payload, project_id=project_id)
    session.add(task)
    session.commit()
    if task.assignee_id is not None:
        notify_assignee(task)
    session.close()
    return task


@app.get("/projects/{project_id}/tasks")
def list_tasks(project_id: int, status: str | None = None, limit: int = 100, offset: int = 0):
    session = SessionLocal()
    query = select(Task).where(Task.project_id == project_id)
    if status is not None:
        query = query.where(Task.status == status)
    tasks = session.scalars(query.order_by(Task.id).limit(limit).offset(offset)).all()
    session.close()
    return tasks


@app.get("/tasks/{task_id}")
def get_task(task_id: int):
    session = SessionLocal()
    task = session.get(Task, task_id)
    session.close()
    return task


@app.patch("/tasks/{task_id}")
def update_task(task_id: int, payload: dict):
    session = SessionLocal()
    task = session.get(Task, task_id)
    task.title = payload.get("title", task.title)
    task.description = payload.get("description")
    task.status = payload.get("status", task.status)
    task.priority = payload.get("priority", task.priority)
    task.assignee_id = payload.get("assignee_id")
    if payload.get("due_date"):
        task.due_date = date.fromisoformat(payload["due_date"])
    session.commit()
    session.close()
    return task


def notify_assignee(task: Task) -> None:
    """Pretend to e-mail the assignee: a slow, blocking call (Chapter 4 deals with it)."""
    time.sleep(0.2)
    print("notified user", task.assignee_id, "about task", task.id)

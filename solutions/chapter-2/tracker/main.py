"""Team task tracker after Chapter 2: shared logic lives in dependencies.

Every handler declares what it needs and FastAPI provides it: a database session that is
committed or rolled back and always closed (`SessionDep`), the signed-in user
(`CurrentUser`), the project the user may see (`MemberProject`, `OwnedProject`), and a rate
limit. Handlers are left with their own logic. The hard-coded settings, `print` and the
blocking call are still here: Chapters 4 to 6 deal with them.
"""

import math
import secrets
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Literal

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, Response, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pwdlib import PasswordHash
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

DATABASE_URL = "sqlite:///./tracker.db"
# Still hard-coded: Chapter 5 moves it to the environment. HS256 wants at least 32 bytes.
SECRET_KEY = "change-me-this-is-not-a-secret-0123456789"
ALGORITHM = "HS256"
ACCESS_TOKEN_MINUTES = 30
LOGIN_LIMIT = parse("5 per 10 seconds")  # per username
WRITE_LIMIT = parse("100 per 10 seconds")  # per signed-in user

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
    hashed_password: Mapped[str] = mapped_column(String(256))
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


class Membership(Base):
    """Who may work on a project. The owner has a row too."""

    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


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


class UserCreate(InputModel):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=100)
    # Taken exactly as sent: spaces can be part of a password.
    password: Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]


class UserPublic(PublicModel):
    id: int
    email: str
    full_name: str
    created_at: UtcDatetime


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


# The owner is whoever creates the project: a client no longer names one.
class ProjectCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)


class ProjectPublic(PublicModel):
    id: int
    name: str
    description: str | None
    owner_id: int
    created_at: UtcDatetime


class MemberAdd(InputModel):
    user_id: Id


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


# --- Dependencies: the logic every handler shares ----------------------------------

def get_session() -> Iterator[Session]:
    """One session per request: committed if the handler returns, rolled back if it raises,
    closed either way."""
    with SessionLocal() as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


# scope="function": the commit runs when the handler returns, before the response is sent,
# so a 201 means the row is stored. (The default, "request", would run it after sending.)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

password_hash = PasswordHash.recommended()  # Argon2id
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def create_access_token(user_id: int) -> str:
    claims = {"sub": str(user_id), "exp": utcnow() + timedelta(minutes=ACCESS_TOKEN_MINUTES)}
    return jwt.encode(claims, SECRET_KEY, algorithm=ALGORITHM)


def unauthorized(detail: str) -> HTTPException:
    # RFC 9110: a 401 names the scheme the client should use.
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], session: SessionDep) -> User:
    try:
        claims = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
        user_id = int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError):
        raise unauthorized("Could not validate the token") from None
    user = session.get(User, user_id)
    if user is None:
        raise unauthorized("Could not validate the token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def member_project(project_id: int, user: CurrentUser, session: SessionDep) -> Project:
    """The project, if the current user is a member; otherwise 404, exactly as if it did not
    exist, so that ids reveal nothing about other teams' projects."""
    project = session.get(Project, project_id)
    if project is None or session.get(Membership, (project_id, user.id)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Project not found")
    return project


MemberProject = Annotated[Project, Depends(member_project)]


def owned_project(project: MemberProject, user: CurrentUser) -> Project:
    """The project, if the current user owns it: a member who is not the owner gets 403."""
    if project.owner_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the project's owner may do this")
    return project


OwnedProject = Annotated[Project, Depends(owned_project)]


def member_task(task_id: int, user: CurrentUser, session: SessionDep) -> Task:
    task = session.get(Task, task_id)
    if task is None or session.get(Membership, (task.project_id, user.id)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Task not found")
    return task


MemberTask = Annotated[Task, Depends(member_task)]

# In memory: right for one process. Several workers need a shared store ("redis://...").
limiter = MovingWindowRateLimiter(MemoryStorage())


def enforce(limit, *keys: str) -> None:
    if not limiter.hit(limit, *keys):
        reset_at, _ = limiter.get_window_stats(limit, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "Too many requests, slow down",
                            headers={"Retry-After": str(retry_after)})


def limit_login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> None:
    enforce(LOGIN_LIMIT, "login", form.username)


def limit_writes(user: CurrentUser) -> None:
    enforce(WRITE_LIMIT, "write", str(user.id))


LimitWrites = Depends(limit_writes)


# --- Routes -------------------------------------------------------------------------

app = FastAPI(title="Team task tracker")


@app.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(payload: UserCreate, session: SessionDep):
    user = User(email=payload.email, full_name=payload.full_name,
                hashed_password=password_hash.hash(payload.password))
    session.add(user)
    try:
        session.flush()  # the unique email is checked here, inside the handler
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, "A user with this email already exists") from None
    print("created user", user.id)
    return user


@app.post("/token", response_model=Token, dependencies=[Depends(limit_login)])
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep):
    user = session.scalar(select(User).where(User.email == form.username))
    # Verify against a dummy hash when there is no such user, so both cases take as long.
    hashed = user.hashed_password if user else DUMMY_HASH
    if not password_hash.verify(form.password, hashed) or user is None:
        raise unauthorized("Incorrect email or password")
    return Token(access_token=create_access_token(user.id))


DUMMY_HASH = password_hash.hash("not anybody's password")


@app.get("/users/me", response_model=UserPublic)
def read_me(user: CurrentUser):
    return user


@app.get("/users", response_model=list[UserPublic])
def list_users(user: CurrentUser, session: SessionDep):
    return session.scalars(select(User).order_by(User.id)).all()


@app.get("/users/{user_id}", response_model=UserPublic)
def get_user(user_id: int, user: CurrentUser, session: SessionDep):
    found = session.get(User, user_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return found


@app.post("/projects", response_model=ProjectPublic, status_code=status.HTTP_201_CREATED,
          dependencies=[LimitWrites])
def create_project(payload: ProjectCreate, user: CurrentUser, session: SessionDep):
    project = Project(**payload.model_dump(), owner_id=user.id)
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id, user_id=user.id))
    print("created project", project.id)
    return project


@app.get("/projects/{project_id}", response_model=ProjectPublic)
def get_project(project: MemberProject):
    return project


@app.get("/projects/{project_id}/members", response_model=list[UserPublic])
def list_members(project: MemberProject, session: SessionDep):
    query = select(User).join(Membership).where(Membership.project_id == project.id).order_by(User.id)
    return session.scalars(query).all()


@app.post("/projects/{project_id}/members", response_model=UserPublic, status_code=status.HTTP_201_CREATED,
          dependencies=[LimitWrites])
def add_member(payload: MemberAdd, project: OwnedProject, session: SessionDep):
    member = session.get(User, payload.user_id)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    if session.get(Membership, (project.id, member.id)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "This user is already a member")
    session.add(Membership(project_id=project.id, user_id=member.id))
    return member


@app.delete("/projects/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
            dependencies=[LimitWrites])
def remove_member(user_id: int, project: OwnedProject, session: SessionDep):
    if user_id == project.owner_id:
        raise HTTPException(status.HTTP_409_CONFLICT, "The owner cannot leave the project")
    membership = session.get(Membership, (project.id, user_id))
    if membership is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This user is not a member")
    session.delete(membership)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@app.post("/projects/{project_id}/tasks", response_model=TaskPublic, status_code=status.HTTP_201_CREATED,
          dependencies=[LimitWrites])
async def create_task(payload: TaskCreate, project: MemberProject, session: SessionDep):
    task = Task(**payload.model_dump(), project_id=project.id)
    session.add(task)
    session.flush()
    if task.assignee_id is not None:
        notify_assignee(task)
    return task


@app.get("/projects/{project_id}/tasks", response_model=list[TaskPublic])
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


@app.get("/tasks/{task_id}", response_model=TaskPublic)
def get_task(task: MemberTask):
    return task


@app.patch("/tasks/{task_id}", response_model=TaskPublic, dependencies=[LimitWrites])
def update_task(payload: TaskUpdate, task: MemberTask, session: SessionDep):
    for key, value in payload.model_dump(exclude_unset=True).items():
        setattr(task, key, value)
    session.flush()
    return task


def notify_assignee(task: Task) -> None:
    """Pretend to e-mail the assignee: a slow, blocking call (Chapter 4 deals with it)."""
    time.sleep(0.2)
    print("notified user", task.assignee_id, "about task", task.id)

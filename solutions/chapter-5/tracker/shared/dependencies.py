"""Guards and rate limits: what a route declares instead of repeating it in its handler."""

import math
import time
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tracker.models import Membership, Project, Task
from tracker.shared.database import SessionDep
from tracker.shared.security import CurrentUser
from tracker.shared.settings import SettingsDep


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


@lru_cache
def limit_of(text: str) -> RateLimitItem:
    """"100 per 10 seconds" as a limit (the settings checked that it parses)."""
    return parse(text)


def new_limiter() -> MovingWindowRateLimiter:
    """In memory: right for one process. Several workers need a shared store ("redis://...")."""
    return MovingWindowRateLimiter(MemoryStorage())


def get_limiter(request: Request) -> MovingWindowRateLimiter:
    """The app's own limiter (create_app puts it in app.state): each app counts its own requests."""
    return request.app.state.limiter


Limiter = Annotated[MovingWindowRateLimiter, Depends(get_limiter)]


def enforce(limiter: MovingWindowRateLimiter, limit: RateLimitItem, *keys: str) -> None:
    if not limiter.hit(limit, *keys):
        reset_at, _ = limiter.get_window_stats(limit, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "Too many requests, slow down",
                            headers={"Retry-After": str(retry_after)})


def limit_login(form: Annotated[OAuth2PasswordRequestForm, Depends()], limiter: Limiter,
                settings: SettingsDep) -> None:
    enforce(limiter, limit_of(settings.login_limit), "login", form.username)


def limit_writes(user: CurrentUser, limiter: Limiter, settings: SettingsDep) -> None:
    enforce(limiter, limit_of(settings.write_limit), "write", str(user.id))


LimitWrites = Depends(limit_writes)

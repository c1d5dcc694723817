"""Team task tracker after Chapter 5: a package, and an app factory that assembles it.

`create_app()` builds a new application on every call: its routers, its rate limiter, its
own `dependency_overrides` and `state`, and its settings. `create_app(Settings(...))` gives a
test an app with settings of its own (all but the database engine, which is made once per
process from the environment's settings). The lifespan makes the one HTTP client the app
calls outside services with, and closes it at shutdown. A test gets a fresh app this way,
and nothing it changes leaks into the next. `app = create_app()` is the app that `fastapi run` serves (see
`[tool.fastapi]` in pyproject.toml). No route is defined here: each lives in tracker.routers.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from tracker.config import Settings, get_settings
from tracker.models import Base
from tracker.routers import auth, projects, tasks, users
from tracker.shared.database import engine
from tracker.shared.dependencies import new_limiter
from tracker.shared.outside import new_http_client


def operation_id(route: APIRoute) -> str:
    """`users-create_user`: the route's tag and its function's name, so that generated
    clients get short, stable method names grouped by tag."""
    return f"{route.tags[0]}-{route.name}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    Base.metadata.create_all(engine)
    # One client for the app's lifetime: made before the first request, closed at shutdown.
    async with new_http_client(app.state.settings) as http:
        app.state.http = http
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app, with `settings` (a test's own), or the process's settings from the environment."""
    app = FastAPI(title="Team task tracker", lifespan=lifespan, generate_unique_id_function=operation_id)
    app.state.settings = settings or get_settings()
    app.state.limiter = new_limiter()
    for module in (users, auth, projects, tasks):
        app.include_router(module.router)
    return app


app = create_app()

"""The database: one engine for the process, and a session per request."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tracker.config import get_settings


def new_engine(url: str):
    # SQLite objects to a connection used by another thread than the one that opened it;
    # FastAPI's thread pool does exactly that, safely. Other databases need no such option.
    options = {"check_same_thread": False} if make_url(url).get_backend_name() == "sqlite" else {}
    return create_engine(url, connect_args=options, pool_pre_ping=True)


engine = new_engine(get_settings().database_url)
SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)


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

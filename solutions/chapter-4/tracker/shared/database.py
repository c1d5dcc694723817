"""The database: one engine for the process, and a session per request."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from tracker.config import DATABASE_URL

engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False})
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

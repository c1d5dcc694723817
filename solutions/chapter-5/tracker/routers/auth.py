from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from tracker.models import User
from tracker.schemas import Token
from tracker.shared.database import SessionDep
from tracker.shared.dependencies import limit_login
from tracker.shared.security import DUMMY_HASH, create_access_token, password_hash, unauthorized
from tracker.shared.settings import SettingsDep

router = APIRouter(tags=["auth"])


@router.post("/token", response_model=Token, dependencies=[Depends(limit_login)])
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep):
    user = session.scalar(select(User).where(User.email == form.username))
    # Verify against a dummy hash when there is no such user, so both cases take as long.
    hashed = user.hashed_password if user else DUMMY_HASH
    if not password_hash.verify(form.password, hashed) or user is None:
        raise unauthorized("Incorrect email or password")
    return Token(access_token=create_access_token(user.id, settings))

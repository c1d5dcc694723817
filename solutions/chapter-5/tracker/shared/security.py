"""Passwords, tokens and the signed-in user."""

from datetime import datetime, timedelta, timezone
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from pwdlib import PasswordHash

from tracker.config import ALGORITHM, Settings
from tracker.models import User
from tracker.shared.database import SessionDep
from tracker.shared.settings import SettingsDep

password_hash = PasswordHash.recommended()  # Argon2id
# Verified against when there is no such user, so that both cases take as long.
DUMMY_HASH = password_hash.hash("not anybody's password")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def create_access_token(user_id: int, settings: Settings) -> str:
    lifetime = timedelta(minutes=settings.access_token_minutes)
    claims = {"sub": str(user_id), "exp": datetime.now(timezone.utc) + lifetime}
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


def unauthorized(detail: str) -> HTTPException:
    # RFC 9110: a 401 names the scheme the client should use.
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], session: SessionDep,
                     settings: SettingsDep) -> User:
    try:
        claims = jwt.decode(token, settings.secret_key.get_secret_value(), algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub"]})
        user_id = int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError):
        raise unauthorized("Could not validate the token") from None
    user = session.get(User, user_id)
    if user is None:
        raise unauthorized("Could not validate the token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

from tracker.schemas.base import InputModel, PublicModel, UtcDatetime


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

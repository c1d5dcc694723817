"""The two base classes every schema derives from, and the field types several schemas share."""

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def as_utc(value: datetime) -> datetime:
    # SQLite keeps no time zone: what comes back from it is naive, though we stored UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# strict: a JSON integer only; Pydantic would otherwise turn "3" into 3 and true into 1.
Id = Annotated[int, Field(ge=1, strict=True)]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class InputModel(BaseModel):
    """Base for request bodies: trim whitespace, and refuse fields we do not know."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicModel(BaseModel):
    """Base for responses: built from ORM objects, field by declared field."""

    model_config = ConfigDict(from_attributes=True)

from pydantic import Field

from tracker.schemas.base import Id, InputModel, PublicModel, UtcDatetime


# The owner is whoever creates the project: a client does not name one.
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

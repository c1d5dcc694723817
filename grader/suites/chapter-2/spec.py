"""Chapter 2's contract as data: Chapter 1's schemas, as they change, plus the new ones.

Chapter 1's `spec.py` (loaded beside this one as `spec_chapter_1`) derives every boundary
probe from a schema; Chapter 2 keeps all of it, except that a project's owner is now the
signed-in user, so `ProjectCreate` loses `owner_id`, and adds the numbers of its own rules.
"""

from spec_chapter_1 import *  # noqa: F401,F403 (the whole contract of Chapter 1)
from spec_chapter_1 import PROJECT_CREATE as _PROJECT_CREATE_1, UNKNOWN as _UNKNOWN_1, Field

PROJECT_CREATE = tuple(field for field in _PROJECT_CREATE_1 if field.name != "owner_id")
MEMBER_ADD = (Field("user_id", "int", 2, required=True, min=1),)

UNKNOWN = {
    **_UNKNOWN_1,
    "POST /projects": ("owner_id", "invite_code", "id", "created_at", "colour"),
    "POST /projects/{id}/members": ("project_id", "role", "id"),
}

TOKEN_FIELDS = frozenset({"access_token", "token_type"})
TOKEN_MINUTES = 30
ALGORITHM = "HS256"

LOGIN_LIMIT, LOGIN_WINDOW = 5, 10  # requests to POST /token per username, per seconds
WRITE_LIMIT, WRITE_WINDOW = 100, 10  # writes per signed-in user, per seconds

# Every route that needs a token, with a body that would be valid: (method, path, body).
# `{project}`, `{task}` and `{user}` are filled with ids that exist.
PROTECTED = (
    ("GET", "/users", None),
    ("GET", "/users/me", None),
    ("GET", "/users/{user}", None),
    ("POST", "/projects", {"name": "Apollo"}),
    ("GET", "/projects/{project}", None),
    ("GET", "/projects/{project}/members", None),
    ("POST", "/projects/{project}/members", {"user_id": "{user}"}),
    ("DELETE", "/projects/{project}/members/{user}", None),
    ("POST", "/projects/{project}/tasks", {"title": "Plan the launch"}),
    ("GET", "/projects/{project}/tasks", None),
    ("GET", "/tasks/{task}", None),
    ("PATCH", "/tasks/{task}", {"status": "done"}),
)

# The routes where a project (or one of its tasks) must not exist for a non-member.
MEMBERS_ONLY = tuple(route for route in PROTECTED if "{project}" in route[1] or "{task}" in route[1])

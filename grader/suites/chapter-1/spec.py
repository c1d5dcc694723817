"""Chapter 1's contract as data: what each input schema accepts, what each response holds.

The statement (`book/chapter-1/exercise.md`) says each rule once; this file says it once
more, as data, and `test_checks.py` derives every boundary probe from it for every route
where the rule applies: just inside and just outside each limit, null, missing, the wrong
type, padded strings, unknown fields. A rule added to the statement is added here, and every
route that uses the schema is then probed for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ACCEPT, REJECT = "accept", "reject"
MISSING = object()


def today() -> str:
    """Today as the statement defines it: the date in UTC."""
    return datetime.now(timezone.utc).date().isoformat()


def days_from_today(days: int) -> str:
    return (datetime.now(timezone.utc).date() + timedelta(days=days)).isoformat()


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "string", "email", "int", "enum" or "date"
    valid: Any  # a value every probe of the other fields can use
    required: bool = False
    nullable: bool = False
    default: Any = MISSING  # what is stored when the field is left out (MISSING: required)
    min: int | None = None  # length for strings, value for integers
    max: int | None = None
    trim: bool = True  # strings: spaces around are removed before the length is checked
    choices: tuple[str, ...] = ()
    visible: bool = True  # the response shows the stored value (a password is never shown)


@dataclass(frozen=True)
class Probe:
    value: Any  # MISSING leaves the field out
    outcome: str  # ACCEPT or REJECT
    stored: Any = None  # what the response shows, when accepted
    why: str = ""


def probes(spec: Field, *, partial: bool = False) -> list[Probe]:
    """Every value worth sending in `spec`'s field, with what must happen.

    `partial`: the field belongs to an update schema, where leaving it out changes nothing.
    """
    found: list[Probe] = []
    if spec.kind == "string":
        found += _string_probes(spec)
    elif spec.kind == "email":
        found += [
            Probe("grace@example.com", ACCEPT, "grace@example.com", "a valid email address"),
            Probe("not-an-email", REJECT, why="not an email address"),
            Probe("grace@", REJECT, why="an address without a domain"),
        ]
    elif spec.kind == "int":
        found += [Probe(spec.min, ACCEPT, spec.min, f"{spec.min} is the smallest allowed"),
                  Probe(spec.min - 1, REJECT, why=f"below {spec.min}")]
        if spec.max is not None:
            found += [Probe(spec.max, ACCEPT, spec.max, f"{spec.max} is the largest allowed"),
                      Probe(spec.max + 1, REJECT, why=f"above {spec.max}")]
        else:
            found.append(Probe(-5, REJECT, why="a negative number"))
        found += [
            Probe(str(spec.min), REJECT, why="a string is not a JSON integer: see strict=True"),
            Probe(float(spec.min), REJECT, why="a float is not a JSON integer: see strict=True"),
            Probe(spec.min + 0.5, REJECT, why="not a whole number"),
            Probe(True, REJECT, why="a boolean is not a JSON integer: see strict=True"),
        ]
    elif spec.kind == "enum":
        found += [Probe(choice, ACCEPT, choice, f"{choice!r} is allowed") for choice in spec.choices]
        found += [Probe(spec.choices[0].upper(), REJECT, why="the values are lower-case, exactly"),
                  Probe("blocked", REJECT, why=f"not one of {', '.join(spec.choices)}"),
                  Probe(1, REJECT, why="a number is not a status")]
    elif spec.kind == "date":
        found += [
            Probe(today(), ACCEPT, today(), "today (in UTC) is allowed"),
            Probe(days_from_today(30), ACCEPT, days_from_today(30), "a future date is allowed"),
            Probe(days_from_today(-1), REJECT, why="yesterday (in UTC) is in the past"),
            Probe("next friday", REJECT, why="not a date"),
            Probe("2030-02-30", REJECT, why="no such day"),
        ]
    if spec.nullable:
        found.append(Probe(None, ACCEPT, None, "null is allowed here"))
    else:
        found.append(Probe(None, REJECT, why="null is not allowed here"))
    if not partial:
        if spec.required:
            found.append(Probe(MISSING, REJECT, why="the field is required"))
        else:
            found.append(Probe(MISSING, ACCEPT, spec.default, "left out, it takes its default"))
    if not spec.visible:
        found = [Probe(probe.value, probe.outcome, MISSING, probe.why) for probe in found]
    return found


def _string_probes(spec: Field) -> list[Probe]:
    low, high = spec.min or 0, spec.max
    assert high is not None
    found = [
        Probe("x" * high, ACCEPT, "x" * high, f"{high} characters is the most allowed"),
        Probe("x" * (high + 1), REJECT, why=f"more than {high} characters"),
        Probe(12345678, REJECT, why="a number is not a string"),
    ]
    if spec.trim:
        found += [
            Probe("  " + "x" * high + "  ", ACCEPT, "x" * high,
                  f"{high} characters once the spaces around are trimmed"),
            Probe("  Padded value  ", ACCEPT, "Padded value", "spaces around a string are trimmed"),
        ]
        if low >= 1:
            found += [Probe("x" * low, ACCEPT, "x" * low, f"{low} character(s) is the fewest allowed"),
                      Probe("", REJECT, why="empty"), Probe("    ", REJECT, why="only spaces, so empty once trimmed")]
        else:
            found.append(Probe("   ", ACCEPT, "", "only spaces: empty once trimmed, which is allowed"))
    else:
        padded = "  " + "x" * (low - 2) + "  "  # just long enough only if the spaces count
        found += [
            Probe("x" * low, ACCEPT, "x" * low, f"{low} characters is the fewest allowed"),
            Probe("x" * (low - 1), REJECT, why=f"fewer than {low} characters"),
            Probe(padded, ACCEPT, padded, f"{len(padded)} characters as sent: this field is not trimmed"),
            Probe(" " * (high + 1 - low) + "x" * low, REJECT, why=f"more than {high} characters as sent"),
        ]
    return found


# --- The schemas, as the statement gives them -------------------------------------------------

USER_CREATE = (
    Field("email", "email", "ada@example.com", required=True),
    Field("full_name", "string", "Ada Lovelace", required=True, min=1, max=100),
    Field("password", "string", "correct horse battery", required=True, min=8, max=128, trim=False, visible=False),
)

PROJECT_CREATE = (
    Field("name", "string", "Launch", required=True, min=1, max=100),
    Field("description", "string", "Ship version 1", nullable=True, default=None, max=1000),
    Field("owner_id", "int", 1, required=True, min=1),  # the checks' first user has id 1
)

TASK_CREATE = (
    Field("title", "string", "Write the release notes", required=True, min=1, max=200),
    Field("description", "string", "Two pages at most", nullable=True, default=None, max=2000),
    Field("status", "enum", "todo", default="todo", choices=("todo", "in_progress", "done")),
    Field("priority", "int", 3, default=3, min=1, max=5),
    Field("due_date", "date", None, nullable=True, default=None),
    Field("assignee_id", "int", None, nullable=True, default=None, min=1),
)

# Every field optional; null only where the column may be empty.
TASK_UPDATE = TASK_CREATE

USER_PUBLIC = frozenset({"id", "email", "full_name", "created_at"})
PROJECT_PUBLIC = frozenset({"id", "name", "description", "owner_id", "created_at"})
TASK_PUBLIC = frozenset({"id", "project_id", "title", "description", "status", "priority", "due_date",
                         "assignee_id", "created_at", "updated_at"})
TIMESTAMPS = ("created_at", "updated_at")

# Fields a client must not send, per route: the internal ones a careless schema would let in.
UNKNOWN = {
    "POST /users": ("is_admin", "id", "hashed_password", "created_at", "nickname"),
    "POST /projects": ("invite_code", "id", "created_at", "colour"),
    "POST /projects/{id}/tasks": ("project_id", "id", "created_at", "updated_at", "tags"),
    "PATCH /tasks/{id}": ("project_id", "id", "created_at", "updated_at", "tags"),
}


def valid_body(fields: tuple[Field, ...], **overrides: Any) -> dict[str, Any]:
    body = {spec.name: spec.valid for spec in fields if spec.required or spec.valid is not None}
    body.update(overrides)
    return body


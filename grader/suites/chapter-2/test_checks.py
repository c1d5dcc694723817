"""Chapter 2's hidden checks: sessions, sign-in, permissions and rate limits as dependencies.

Each test is one check; its name (without `test_`, dashes for underscores) is the check's id
in `chapter.toml`. Chapter 1's rules are checked again here for a signed-in client, with
Chapter 1's own probes and helpers (`checks_chapter_1`); the new rules are written below.
Every check must fail on the starter (Chapter 1's solution) and on the mutants that name it.
"""

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime

from checks_chapter_1 import (
    CHANGES,
    FULL,
    _patch_and_compare,
    _set_stored_due_date,
    check_fields,
    check_unknown_fields,
    expect_list,
    expect_public,
    expect_utc,
    test_create_user_refuses_unknown_fields,  # noqa: F401 (the route is public: unchanged)
    test_create_user_returns_public_fields,  # noqa: F401
    test_create_user_validates_fields,  # noqa: F401
    untimed,
)
from grader.harness import (
    AppCrashed,
    AppHung,
    Blocked,
    CheckFailed,
    app_database,
    body_of,
    exchange,
    expect_equal,
    expect_fields,
    expect_rejected,
    expect_status,
)
from spec import (
    ALGORITHM,
    LOGIN_LIMIT,
    LOGIN_WINDOW,
    MEMBERS_ONLY,
    PROJECT_CREATE,
    PROJECT_PUBLIC,
    PROTECTED,
    TASK_CREATE,
    TASK_PUBLIC,
    TASK_UPDATE,
    TIMESTAMPS,
    TOKEN_FIELDS,
    TOKEN_MINUTES,
    USER_CREATE,
    USER_PUBLIC,
    WRITE_LIMIT,
    WRITE_WINDOW,
    days_from_today,
    valid_body,
)

COVERED_BY = {
    "POST /users": "create-user-returns-public-fields",
    "POST /token": "login-returns-bearer-token",
    "POST /projects": "create-project-owned-by-signed-in-user",
    "POST /projects/{id}/tasks": "create-task-applies-defaults",
    "POST /projects/{id}/members": "owner-adds-and-removes-members",
}
PASSWORD = "correct horse battery"


# --- Tokens, made by the checks ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(claims: dict, key: str, algorithm: str = "HS256") -> str:
    """A JWT made here (HS256, or the unsigned `none`), to see what the app accepts."""
    signing = _b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    if algorithm == "none":
        return signing + "."
    return signing + "." + _b64(hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest())


def token_parts(token: str) -> tuple[dict, dict] | None:
    """A JWT's header and claims, read without checking the signature (anyone can)."""
    try:
        header, claims, _ = token.split(".")
        return tuple(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in (header, claims))
    except (ValueError, AttributeError):
        return None


# --- Setting the scene: people, sign-in, projects ------------------------------------------------


def _scene(send, route: str, what: str, expected=(200, 201)):
    try:
        response = send()
    except AppCrashed as crash:
        raise Blocked(route, COVERED_BY[route], f"{what}: {crash}") from None
    if response.status_code not in expected:
        raise Blocked(route, COVERED_BY[route], f"{what}, got {response.status_code}.\n{exchange(response)}")
    return response


@dataclass
class Person:
    id: int
    email: str
    password: str
    token: str
    public: dict

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(client, email: str, password: str = PASSWORD, full_name: str = "Ada Lovelace") -> dict:
    payload = {"email": email, "full_name": full_name, "password": password}
    body = body_of(_scene(lambda: client.post("/users", json=payload), "POST /users", "signing up a valid user"))
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise Blocked("POST /users", COVERED_BY["POST /users"], "signing up a valid user, with its id")
    return body


def log_in(client, email: str, password: str = PASSWORD):
    return client.post("/token", data={"username": email, "password": password})


def sign_in(client, email: str, password: str = PASSWORD) -> str:
    response = _scene(lambda: log_in(client, email, password), "POST /token", "signing in with the right password",
                      expected=(200,))
    body = body_of(response)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise Blocked("POST /token", COVERED_BY["POST /token"], f"signing in: no access_token.\n{exchange(response)}")
    return token


def person(client, name: str = "ada") -> Person:
    email = f"{name}@example.com"
    public = sign_up(client, email, full_name=name.title())
    return Person(public["id"], email, PASSWORD, sign_in(client, email), public)


class As:
    """The check's client, signed in as someone: every request carries their token."""

    def __init__(self, client, who: Person) -> None:
        self._client, self.who = client, who

    def __getattr__(self, name):
        return getattr(self._client, name)

    def request(self, method, url, **options):
        headers = {**self.who.headers, **options.pop("headers", {})}
        return self._client.request(method, url, headers=headers, **options)

    def get(self, url, **options):
        return self.request("GET", url, **options)

    def post(self, url, **options):
        return self.request("POST", url, **options)

    def patch(self, url, **options):
        return self.request("PATCH", url, **options)

    def delete(self, url, **options):
        return self.request("DELETE", url, **options)


def _created(response, route: str, what: str) -> dict:
    body = body_of(_scene(lambda: response, route, what))
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise Blocked(route, COVERED_BY[route], f"{what}, with its id.\n{exchange(response)}")
    return body


def new_project(signed_in: As, **overrides) -> dict:
    payload = valid_body(PROJECT_CREATE, **overrides)
    return _created(signed_in.post("/projects", json=payload), "POST /projects", "creating a valid project")


def new_task(signed_in: As, project_id: int, **fields) -> dict:
    payload = valid_body(TASK_CREATE, **fields)
    return _created(signed_in.post(f"/projects/{project_id}/tasks", json=payload), "POST /projects/{id}/tasks",
                    "creating a valid task")


def add_member(owner: As, project_id: int, user_id: int) -> None:
    _scene(lambda: owner.post(f"/projects/{project_id}/members", json={"user_id": user_id}),
           "POST /projects/{id}/members", "the owner adding a member", expected=(200, 201))


def team(client, name: str = "ada"):
    """Someone signed in, with a project of their own: (their client, the project)."""
    owner = As(client, person(client, name))
    return owner, new_project(owner)


def expect_detail(response, why: str) -> None:
    body = body_of(response)
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"].strip():
        raise CheckFailed(f"Expected a body like {{\"detail\": \"...\"}} ({why}).\n{exchange(response)}")


def expect_401(response, why: str) -> None:
    expect_status(response, 401, why)
    expect_detail(response, why)
    challenge = response.headers.get("www-authenticate", "")
    if not challenge.lower().startswith("bearer"):
        raise CheckFailed(f"Expected the 401 to carry the header `WWW-Authenticate: Bearer` ({why}), got "
                          f"{challenge or 'no such header'}.\n{exchange(response)}")


def fill(template, ids: dict):
    """A route's path or body with real ids in place of {project}, {task} and {user}."""
    if isinstance(template, str):
        value = template.format(**ids)
        return int(value) if template.startswith("{") and value.isdigit() else value
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    return template


def scene_of_every_route(client):
    """An owner with a project and a task, and a second user who is a member: ids for every route."""
    owner, project = team(client)
    task = new_task(owner, project["id"])
    other = person(client, "bob")
    add_member(owner, project["id"], other.id)
    return owner, other, {"project": project["id"], "task": task["id"], "user": other.id}


# --- Task 1: a session per request ----------------------------------------------------------------


def test_failures_leave_the_app_working(client):
    owner, project = team(client)
    stranger = As(client, person(client, "eve"))
    member = person(client, "bob")
    add_member(owner, project["id"], member.id)
    as_member = As(client, member)
    failing = [
        (lambda: stranger.get(f"/projects/{project['id']}"), 404, "a project that is not theirs"),
        (lambda: owner.get("/projects/999999/tasks"), 404, "a project that does not exist"),
        (lambda: client.post("/users", json={"email": "ada@example.com", "full_name": "Again",
                                             "password": PASSWORD}), 409, "a taken email"),
        (lambda: client.get("/users/me", headers={"Authorization": "Bearer " + forge(
            {"sub": "999999", "exp": int(time.time()) + 600}, "any key")}), 401, "a token that is not valid"),
        (lambda: owner.post(f"/projects/{project['id']}/tasks", json={"title": ""}), 422, "an invalid body"),
        (lambda: as_member.post(f"/projects/{project['id']}/members", json={"user_id": member.id}), 403,
         "a member who is not the owner"),
    ]
    sent = 0
    try:
        for round_ in range(10):
            for send, status, why in failing:
                response = send()
                sent += 1
                expect_status(response, status, f"request {sent} of 60 that fail, each with its own answer: {why}")
        for number in range(30):
            created = owner.post(f"/projects/{project['id']}/tasks", json={"title": f"Task {number}"})
            body = expect_status(created, 201, f"request {sent + 1} (after 60 that failed): a valid task")
            sent += 2
            expect_status(owner.get(f"/tasks/{body['id']}"), 200, "the task just created")
    except AppHung as hung:
        raise CheckFailed(
            f"After {sent} requests, of which {min(sent, 60)} failed, your app stopped answering: {hung}\n"
            "A session that is not closed keeps its pooled connection, and SQLAlchemy's pool has 15; the next "
            "request waits for one that never comes back."
        ) from None


def _stored_title(client, task_id):
    """The title of a task row, read straight from the app's database file."""
    with app_database(client) as database:
        for (table,) in database.execute("select name from sqlite_master where type = 'table'"):
            quoted = '"' + table.replace('"', '""') + '"'
            columns = {row[1] for row in database.execute(f"pragma table_info({quoted})")}
            if {"title", "priority", "project_id"} <= columns:
                row = database.execute(f"select title from {quoted} where id = ?", (task_id,)).fetchone()
                return row[0] if row else None
    raise CheckFailed("This check could not find your tasks table (with title, priority and project_id) in the "
                      "app's database.")


def test_writes_are_stored_before_the_answer(client):
    owner, project = team(client)
    for number in range(30):
        title = f"Stored before the 201, #{number}"
        response = owner.post(f"/projects/{project['id']}/tasks", json={"title": title})
        body = expect_status(response, 201, "a valid task")
        stored = _stored_title(client, body.get("id"))
        if stored != title:
            raise CheckFailed(
                f"Right after the 201 for a new task (number {number + 1} of 30), the database does not hold it "
                f"(the row: {stored!r}). The commit must run before the response is sent: a client that reads "
                f"at once, or a crash just after the answer, must find the row.\n{exchange(response)}")
        renamed = title + " (renamed)"
        response = owner.patch(f"/tasks/{body['id']}", json={"title": renamed})
        expect_status(response, 200, "a valid PATCH")
        if _stored_title(client, body["id"]) != renamed:
            raise CheckFailed(f"Right after the 200 for a PATCH, the database still holds the old title. The commit "
                              f"must run before the response is sent.\n{exchange(response)}")


# --- Task 2: sign-up and sign-in --------------------------------------------------------------------


def test_create_user_duplicate_email_conflicts(client):
    sign_up(client, "dup@example.com")
    for email, why in [("dup@example.com", "the email is already taken"),
                       ("dup@EXAMPLE.com", "the same email once EmailStr has lowercased its domain")]:
        response = client.post("/users", json=valid_body(USER_CREATE, email=email, full_name="Someone Else"))
        expect_status(response, 409, why)
        expect_detail(response, "a 409 explains the conflict")
    reader = As(client, Person(0, "dup@example.com", PASSWORD, sign_in(client, "dup@example.com"), {}))
    listed = expect_list(reader.get("/users"), "GET /users")
    if len(listed) != 1:
        raise CheckFailed(f"Expected the refused duplicates not to be stored: one user in all.\n"
                          f"{exchange(reader.get('/users'))}")


def _users_table(database):
    for (table,) in database.execute("select name from sqlite_master where type = 'table'"):
        quoted = '"' + table.replace('"', '""') + '"'
        columns = [row[1] for row in database.execute(f"pragma table_info({quoted})")]
        if "email" in columns:
            return quoted, columns
    raise CheckFailed("This check could not find your users table (a table with an email column) in the app's "
                      "database.")


def test_signup_stores_argon2_hash(client):
    password = "  Spaces count, 42!  "
    user = sign_up(client, "hash@example.com", password=password)
    with app_database(client) as database:
        table, columns = _users_table(database)
        row = database.execute(f"select * from {table} where email = ?", ("hash@example.com",)).fetchone()
    if row is None:
        raise CheckFailed("The user who just signed up is not in the users table.")
    stored = dict(zip(columns, row))
    leaked = [name for name, value in stored.items() if isinstance(value, str) and password.strip() in value]
    if leaked:
        raise CheckFailed(f"The password is stored as it was sent, in the column(s) {leaked}: store only its hash.")
    hashes = {name: value for name, value in stored.items() if isinstance(value, str) and value.startswith("$argon2id$")}
    if not hashes:
        shown = {name: value for name, value in stored.items() if name != "email"}
        raise CheckFailed(f"Expected the users table to keep an Argon2 hash of the password (a string starting with "
                          f"$argon2id$, as pwdlib's PasswordHash.recommended() makes), found this row: {shown}")
    from pwdlib import PasswordHash

    hasher = PasswordHash.recommended()
    column, value = next(iter(hashes.items()))
    if not hasher.verify(password, value):
        raise CheckFailed(f"The Argon2 hash in the column {column} is not a hash of the password exactly as sent "
                          "(passwords are not trimmed).")
    response = log_in(client, "hash@example.com", password)
    expect_status(response, 200, "signing in with the password exactly as it was sent, spaces included")
    expect_equal(user["email"], "hash@example.com", "the new user's email", response)


def test_login_returns_bearer_token(client):
    user = sign_up(client, "grace@example.com")
    before = time.time()
    response = log_in(client, "grace@example.com")
    body = expect_status(response, 200, "the right email and password, sent as form fields username and password")
    expect_fields(body, TOKEN_FIELDS, response, "the token response")
    expect_equal(body.get("token_type"), "bearer", "token_type", response)
    parts = token_parts(body.get("access_token"))
    if parts is None:
        raise CheckFailed(f"Expected access_token to be a JWT (three dot-separated base64url parts).\n{exchange(response)}")
    header, claims = parts
    expect_equal(header.get("alg"), ALGORITHM, "the token's signing algorithm (its header's alg)", response)
    expect_equal(claims.get("sub"), str(user["id"]), "the token's sub claim: the user's id, as a string", response)
    expires = claims.get("exp")
    lifetime = expires - before if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None
    if lifetime is None or not (TOKEN_MINUTES * 60 - 120 <= lifetime <= TOKEN_MINUTES * 60 + 120):
        raise CheckFailed(f"Expected the token's exp claim to be {TOKEN_MINUTES} minutes after it was issued, got "
                          f"exp={expires!r}" + (f" ({lifetime / 60:.1f} minutes)" if lifetime else "") +
                          f".\n{exchange(response)}")
    me = client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    shown = expect_status(me, 200, "GET /users/me with the new token")
    expect_public(shown, USER_PUBLIC, me, "GET /users/me's body")
    expect_equal(untimed(shown), untimed(user), "GET /users/me: the signed-in user", me)


def test_login_refuses_wrong_credentials(client):
    sign_up(client, "ada@example.com")
    wrong = log_in(client, "ada@example.com", "not the password")
    expect_401(wrong, "a wrong password")
    unknown = log_in(client, "nobody@example.com")
    expect_401(unknown, "an email that no user has")
    expect_equal(body_of(unknown).get("detail"), body_of(wrong).get("detail"),
                 "the detail for an unknown email (the same as for a wrong password, so that it reveals nothing)",
                 unknown)
    expect_401(log_in(client, "Ada@example.com"), "the username is compared with the email exactly")
    expect_401(log_in(client, "ada@example.com", PASSWORD + " "), "the password is compared exactly")
    expect_status(log_in(client, "ada@example.com"), 200, "the right email and password")


def test_protected_routes_require_token(client):
    owner, other, ids = scene_of_every_route(client)
    wrong_ids = {"project": 999999, "task": 999999, "user": 999999}
    for method, path, body in PROTECTED:
        for why, values, payload in [
            ("no token", ids, fill(body, ids)),
            ("no token, and the ids name nothing", wrong_ids, fill(body, wrong_ids)),
            ("no token, and an invalid body", ids, {"title": "", "name": "", "user_id": "x", "status": 7}),
        ]:
            if body is None and why.endswith("body"):
                continue
            response = client.request(method, fill(path, values), json=payload)
            expect_401(response, f"{method} {path}: {why}")
    members = expect_list(owner.get(f"/projects/{ids['project']}/members"), "the project's members")
    expect_equal(len(members), 2, "the number of members after the refused DELETE (it must change nothing)",
                 owner.get(f"/projects/{ids['project']}/members"))


def test_invalid_tokens_are_refused(client, secret_key):
    owner, other, ids = scene_of_every_route(client)
    if not isinstance(secret_key, str) or not secret_key:
        raise CheckFailed(f"Expected SECRET_KEY in tracker/main.py to be a string, found {secret_key!r}.")
    now = int(time.time())
    honest = forge({"sub": str(owner.who.id), "exp": now + 600}, secret_key)
    response = client.get("/users/me", headers={"Authorization": f"Bearer {honest}"})
    expect_status(response, 200, "a token the checks signed with your SECRET_KEY (HS256, sub the user's id as a "
                  "string, exp in ten minutes) is accepted: sign and verify tokens with SECRET_KEY")
    real = owner.who.token
    head, claims, signature = real.split(".")
    tampered = head + "." + _b64(json.dumps({**token_parts(real)[1], "sub": str(other.id)}).encode()) + "." + signature
    bad = {
        "a malformed token": "not-a-jwt",
        "a token signed with another key": forge({"sub": str(owner.who.id), "exp": now + 600}, "another key entirely!"),
        "an expired token": forge({"sub": str(owner.who.id), "exp": now - 120}, secret_key),
        "a token without exp": forge({"sub": str(owner.who.id)}, secret_key),
        "a token without sub": forge({"exp": now + 600}, secret_key),
        "a token for a user who does not exist": forge({"sub": "999999", "exp": now + 600}, secret_key),
        "a token whose sub is not an id": forge({"sub": "ada", "exp": now + 600}, secret_key),
        "an unsigned token (alg none)": forge({"sub": str(owner.who.id), "exp": now + 600}, "", "none"),
        "a real token whose claims were changed": tampered,
    }
    for method, path, body in PROTECTED:
        for why, token in bad.items():
            response = client.request(method, fill(path, ids), json=fill(body, ids),
                                      headers={"Authorization": f"Bearer {token}"})
            expect_401(response, f"{method} {path} with {why}")
    expect_401(client.get("/users/me", headers={"Authorization": f"Basic {real}"}), "a scheme other than Bearer")
    members = expect_list(owner.get(f"/projects/{ids['project']}/members"), "the project's members")
    expect_equal(len(members), 2, "the number of members after the refused DELETEs (they must change nothing)",
                 owner.get(f"/projects/{ids['project']}/members"))


def test_user_reads_hide_private_fields(client):
    created = [person(client, name) for name in ("zoe", "adam", "mia")]
    reader = As(client, created[0])
    for user in created:
        response = reader.get(f"/users/{user.id}")
        body = expect_status(response, 200)
        expect_public(body, USER_PUBLIC, response, "GET /users/{id}'s body")
        expect_equal(untimed(body), untimed(user.public), "the user read back", response)
    response = reader.get("/users")
    listed = expect_list(response, "GET /users")
    for item in listed:
        expect_public(item, USER_PUBLIC, response, "each user in GET /users")
    expect_equal([item.get("email") for item in listed], [user.email for user in created],
                 "the users listed, in order of id", response)
    response = As(client, created[2]).get("/users/me")
    expect_equal(untimed(expect_status(response, 200)), untimed(created[2].public), "GET /users/me", response)


# --- Task 3: projects and who may see them ------------------------------------------------------------


def test_create_project_owned_by_signed_in_user(client):
    owner = As(client, person(client))
    response = owner.post("/projects", json={"name": "  Apollo "})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_public(body, PROJECT_PUBLIC, response, "the new project")
    expect_equal({key: body.get(key) for key in ("name", "description", "owner_id")},
                 {"name": "Apollo", "description": None, "owner_id": owner.who.id},
                 "the new project's fields (its owner is the signed-in user)", response)
    response = owner.get(f"/projects/{body['id']}")
    read = expect_status(response, 200)
    expect_equal(untimed(read), untimed(body), "the project read back (the same as when it was created)", response)
    response = owner.get(f"/projects/{body['id']}/members")
    members = expect_list(response, "the new project's members")
    expect_equal([member.get("id") for member in members], [owner.who.id], "the members of a new project: its owner",
                 response)
    for member in members:
        expect_public(member, USER_PUBLIC, response, "each member listed")
    other = As(client, person(client, "bob"))
    theirs = new_project(other, name="Gemini")
    expect_equal(theirs.get("owner_id"), other.who.id, "the owner of a project someone else created", response)


def test_create_project_validates_fields(client):
    owner = As(client, person(client))
    check_fields(owner, "POST", "/projects", PROJECT_CREATE, valid_body(PROJECT_CREATE))


def test_create_project_refuses_unknown_fields(client):
    owner = As(client, person(client))
    check_unknown_fields(owner, "/projects", "POST /projects", valid_body(PROJECT_CREATE))


def _not_found_body(signed_in: As, method: str, path: str, body, ids: dict):
    """What a route answers for ids that name nothing: a non-member must get exactly this."""
    missing = {key: 999999 for key in ("project", "task")}
    response = signed_in.request(method, fill(path, {**ids, **missing}), json=fill(body, ids))
    expect_status(response, 404, f"{method} {path} for an id that names nothing")
    expect_detail(response, "a 404 says what was not found")
    return body_of(response)


def test_non_members_see_404_everywhere(client):
    owner, member, ids = scene_of_every_route(client)
    stranger = As(client, person(client, "eve"))
    for method, path, body in MEMBERS_ONLY:
        nothing = _not_found_body(stranger, method, path, body, ids)
        response = stranger.request(method, fill(path, ids), json=fill(body, ids))
        expect_status(response, 404, f"{method} {path} by a signed-in user who is not a member: to them the "
                      "project and its tasks do not exist")
        expect_equal(body_of(response), nothing, "the 404 body for a project that is not theirs (the same as for "
                     "one that does not exist)", response)
    response = owner.get(f"/projects/{ids['project']}/tasks")
    tasks = expect_list(response, "the project's tasks after the strangers' attempts")
    expect_equal([(task.get("title"), task.get("status")) for task in tasks], [("Write the release notes", "todo")],
                 "the tasks after the strangers' refused requests (they must change nothing)", response)
    response = owner.get(f"/projects/{ids['project']}/members")
    expect_equal(len(expect_list(response, "the members")), 2, "the members after the strangers' attempts", response)


def test_members_work_on_the_project(client):
    owner, project = team(client)
    member = As(client, person(client, "bob"))
    add_member(owner, project["id"], member.who.id)
    url = f"/projects/{project['id']}"
    read = member.get(url)
    expect_equal(untimed(expect_status(read, 200, "a member reads the project")), untimed(project), "the project",
                 read)
    response = member.get(f"{url}/members")
    expect_equal([item.get("id") for item in expect_list(response, "the members")],
                 sorted([owner.who.id, member.who.id]), "the members, owner included, in order of id", response)
    task = new_task(member, project["id"], title="Made by a member")
    for response, why in [
        (member.get(f"/tasks/{task['id']}"), "a member reads a task"),
        (owner.get(f"/tasks/{task['id']}"), "the owner reads a member's task"),
        (member.patch(f"/tasks/{task['id']}", json={"status": "done"}), "a member updates a task"),
        (member.get(f"{url}/tasks"), "a member lists the tasks"),
    ]:
        expect_status(response, 200, why)
    expect_equal(body_of(owner.get(f"/tasks/{task['id']}")).get("status"), "done", "the task's status after the "
                 "member's PATCH", owner.get(f"/tasks/{task['id']}"))


def test_only_the_owner_manages_members(client):
    owner, project = team(client)
    member = As(client, person(client, "bob"))
    third = person(client, "cy")
    add_member(owner, project["id"], member.who.id)
    url = f"/projects/{project['id']}/members"
    for response, why in [
        (member.post(url, json={"user_id": third.id}), "a member who is not the owner adds someone"),
        (member.delete(f"{url}/{owner.who.id}"), "a member who is not the owner removes the owner"),
        (member.delete(f"{url}/{member.who.id}"), "a member who is not the owner removes themselves"),
    ]:
        expect_status(response, 403, why + ": they know the project exists, so 403, not 404")
        expect_detail(response, "a 403 says why")
    response = owner.get(url)
    expect_equal([item.get("id") for item in expect_list(response, "the members")],
                 sorted([owner.who.id, member.who.id]), "the members after the refused requests", response)


def test_owner_adds_and_removes_members(client):
    owner, project = team(client)
    bob = person(client, "bob")
    url = f"/projects/{project['id']}/members"
    response = owner.post(url, json={"user_id": bob.id})
    body = expect_status(response, 201, "the owner adds a member: 201 Created")
    expect_public(body, USER_PUBLIC, response, "the new member")
    expect_equal(untimed(body), untimed(bob.public), "the new member", response)
    for payload, status, why in [
        ({"user_id": bob.id}, 409, "bob is already a member"),
        ({"user_id": owner.who.id}, 409, "the owner is already a member"),
        ({"user_id": 999999}, 404, "no user has this id"),
    ]:
        response = owner.post(url, json=payload)
        expect_status(response, status, why)
        expect_detail(response, why)
    for payload, loc, why in [
        ({"user_id": str(bob.id)}, ("body", "user_id"), "a string is not a JSON integer: strict"),
        ({"user_id": float(bob.id)}, ("body", "user_id"), "a float is not a JSON integer: strict"),
        ({"user_id": True}, ("body", "user_id"), "a boolean is not a JSON integer: strict"),
        ({"user_id": 0}, ("body", "user_id"), "ids start at 1"),
        ({"user_id": None}, ("body", "user_id"), "user_id may not be null"),
        ({}, ("body", "user_id"), "user_id is required"),
        ({"user_id": bob.id, "role": "admin"}, ("body", "role"), "MemberAdd takes user_id only"),
    ]:
        expect_rejected(owner.post(url, json=payload), loc, why)
    as_bob = As(client, bob)
    expect_status(as_bob.get(f"/projects/{project['id']}"), 200, "bob, a member, reads the project")
    response = owner.delete(f"{url}/{bob.id}")
    expect_status(response, 204, "the owner removes a member: 204 No Content")
    if response.content:
        raise CheckFailed(f"Expected a 204 with no body.\n{exchange(response)}")
    response = as_bob.get(f"/projects/{project['id']}")
    expect_status(response, 404, "a removed member loses access at once")
    for target, status, why in [(bob.id, 404, "bob is no longer a member"),
                                (999999, 404, "no member has this id"),
                                (owner.who.id, 409, "the owner cannot be removed")]:
        response = owner.delete(f"{url}/{target}")
        expect_status(response, status, why)
        expect_detail(response, why)
    response = owner.get(url)
    expect_equal([item.get("id") for item in expect_list(response, "the members")], [owner.who.id],
                 "the members at the end: the owner alone", response)


# --- Chapter 1's rules, for a signed-in client ------------------------------------------------------


def test_create_task_applies_defaults(client):
    owner, project = team(client)
    response = owner.post(f"/projects/{project['id']}/tasks", json={"title": "Book the venue"})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_public(body, TASK_PUBLIC, response, "the new task")
    expected = {"title": "Book the venue", "status": "todo", "priority": 3, "description": None,
                "due_date": None, "assignee_id": None, "project_id": project["id"]}
    expect_equal({key: body[key] for key in expected}, expected, "the new task's fields", response)
    response = owner.get(f"/tasks/{body['id']}")
    read = expect_status(response, 200)
    expect_public(read, TASK_PUBLIC, response, "GET /tasks/{id}'s body")
    expect_equal(untimed(read), untimed(body), "the task read back (the same as when it was created)", response)


def test_create_task_validates_fields(client):
    owner, project = team(client)
    check_fields(owner, "POST", f"/projects/{project['id']}/tasks", TASK_CREATE, valid_body(TASK_CREATE))


def test_create_task_refuses_unknown_fields(client):
    owner, project = team(client)
    check_unknown_fields(owner, f"/projects/{project['id']}/tasks", "POST /projects/{id}/tasks",
                         valid_body(TASK_CREATE))


def test_update_task_changes_only_given_fields(client):
    owner, project = team(client)
    full = new_task(owner, project["id"], **FULL, due_date=days_from_today(7))
    for name, value in CHANGES.items():
        full = _patch_and_compare(owner, full, {name: value if name != "due_date" else days_from_today(9)},
                                  f"a PATCH of {name} alone changes {name} alone")
    empty = new_task(owner, project["id"], title="Nothing else set")
    for name in ("status", "priority", "title"):
        empty = _patch_and_compare(owner, empty, {name: CHANGES[name]},
                                   f"a PATCH of {name} alone leaves the empty fields empty")
    for name in ("description", "due_date", "assignee_id"):
        full = _patch_and_compare(owner, full, {name: None}, f"null clears {name}")
    _patch_and_compare(owner, full, {}, "an empty PATCH changes nothing")


def test_update_task_validates_fields(client):
    owner, project = team(client)
    task = new_task(owner, project["id"], **FULL, due_date=days_from_today(3))
    url = f"/tasks/{task['id']}"
    check_fields(owner, "PATCH", url, TASK_UPDATE, {}, partial=True, read_back=url)


def test_update_task_refuses_unknown_fields(client):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    url = f"/tasks/{task['id']}"
    check_unknown_fields(owner, url, "PATCH /tasks/{id}", {"status": "done"}, method="PATCH")
    expect_equal(body_of(owner.get(url)).get("status"), "todo", "the status after the refused PATCHes", owner.get(url))


def test_stored_past_due_date_stays_readable(client):
    owner, project = team(client)
    task = new_task(owner, project["id"], title="Renew the domain", due_date=days_from_today(1))
    past = days_from_today(-10)
    _set_stored_due_date(client, task["id"], past)
    url = f"/tasks/{task['id']}"
    response = owner.get(url)
    body = expect_status(response, 200, "a task whose due date has passed can still be read")
    expect_equal(body.get("due_date"), past, "the stored due date", response)
    response = owner.patch(url, json={"status": "done"})
    body = expect_status(response, 200, "a task whose due date has passed can still be updated")
    expect_equal([body.get("status"), body.get("due_date")], ["done", past], "status and the kept due date", response)
    expect_rejected(owner.patch(url, json={"due_date": past}), ("body", "due_date"),
                    "sending a date in the past is still refused")


def test_missing_resources_return_404(client):
    owner, member, ids = scene_of_every_route(client)
    routes = [("GET", "/users/{}", None), *[(method, re.sub(r"\{(project|task)\}", "{}", path), body)
                                            for method, path, body in MEMBERS_ONLY]]
    for method, pattern, payload in routes:
        for missing in (999, 0, -1):
            url = fill(pattern.replace("{}", str(missing)) if "{}" in pattern else pattern, ids)
            response = owner.request(method, url, json=fill(payload, ids))
            expect_status(response, 404, f"no row has id {missing}")
            expect_detail(response, "a 404 says what was not found")
        response = owner.request(method, fill(pattern.replace("{}", "abc"), ids), json=fill(payload, ids))
        expect_rejected(response, ("path",), "an id in the path is an integer")
    expect_status(owner.get(f"/projects/{ids['project']}"), 200, "this project exists")
    expect_status(owner.get(f"/tasks/{ids['task']}"), 200, "this task exists")


def test_timestamps_are_utc_everywhere(client):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    created = {"the user": (owner.who.public, f"/users/{owner.who.id}"),
               "the project": (project, f"/projects/{project['id']}"), "the task": (task, f"/tasks/{task['id']}")}
    for what, (body, url) in created.items():
        response = owner.get(url)
        read = expect_status(response, 200)
        for name in TIMESTAMPS:
            if name in body:
                expect_utc(body[name], f"{name} when {what} was created", response)
                expect_utc(read.get(name), f"{name} when {what} is read back", response)
                if datetime.fromisoformat(body[name].replace("Z", "+00:00")) != datetime.fromisoformat(
                        read[name].replace("Z", "+00:00")):
                    raise CheckFailed(f"Expected {what}'s {name} to be the same moment when created and when read "
                                      f"back: {body[name]} then {read[name]}.\n{exchange(response)}")
    for url, what in [("/users", "each user listed"), ("/users/me", "the signed-in user"),
                      (f"/projects/{project['id']}/members", "each member listed"),
                      (f"/projects/{project['id']}/tasks", "each task listed")]:
        response = owner.get(url)
        body = expect_status(response, 200)
        for item in body if isinstance(body, list) else [body]:
            for name in TIMESTAMPS:
                if isinstance(item, dict) and name in item:
                    expect_utc(item[name], f"{name} of {what}", response)
    answer = expect_status(owner.patch(f"/tasks/{task['id']}", json={"status": "done"}), 200)
    for name in TIMESTAMPS:
        expect_utc(answer.get(name), f"{name} after a PATCH", owner.get(f"/tasks/{task['id']}"))


def test_list_tasks_validates_query(client):
    owner, project = team(client)
    new_task(owner, project["id"])
    url = f"/projects/{project['id']}/tasks"
    for query, loc, why in [
        ({"limit": 0}, ("query", "limit"), "limit is from 1 to 100"),
        ({"limit": 101}, ("query", "limit"), "limit is from 1 to 100"),
        ({"limit": "ten"}, ("query", "limit"), "limit is an integer"),
        ({"offset": -1}, ("query", "offset"), "offset is 0 or more"),
        ({"status": "blocked"}, ("query", "status"), "status is one of todo, in_progress, done"),
    ]:
        expect_rejected(owner.get(url, params=query), loc, why)
    for query in ({"limit": 1}, {"limit": 100}, {"offset": 0}, {"status": "todo"}):
        response = owner.get(url, params=query)
        expect_equal(len(expect_list(response, f"the tasks with {query}")), 1, f"the number of tasks with {query}",
                     response)


def test_list_tasks_filters_and_pages(client):
    owner, project = team(client)
    other = new_project(owner, name="Other")
    url = f"/projects/{project['id']}/tasks"
    response = owner.get(url)
    expect_equal(expect_list(response, "the tasks of a project without any"), [], "an empty project's tasks", response)
    for number in range(25):
        new_task(owner, project["id"], title=f"Task {number}", status="done" if number % 5 == 0 else "todo")
    new_task(owner, other["id"], title="Someone else's task", status="done")
    response = owner.get(url)
    page = expect_list(response, "the default page")
    expect_equal([item.get("title") for item in page], [f"Task {n}" for n in range(20)],
                 "the default page: the first 20 tasks, in order of id", response)
    for query, titles in [
        ({"limit": 3, "offset": 1}, ["Task 1", "Task 2", "Task 3"]),
        ({"offset": 23}, ["Task 23", "Task 24"]),
        ({"status": "done", "limit": 2, "offset": 1}, ["Task 5", "Task 10"]),
        ({"status": "in_progress"}, []),
    ]:
        response = owner.get(url, params=query)
        shown = [item.get("title") for item in expect_list(response, f"the tasks with {query}")]
        expect_equal(shown, titles, f"the titles with {query} (status filters first, then limit and offset)", response)


# The operations whose success answer is JSON, documented by a response schema (a later
# chapter adds its own: see Chapter 4's conftest).
DOCUMENTED = [
    ("post", "/users"), ("post", "/token"), ("get", "/users"), ("get", "/users/me"), ("get", "/users/{}"),
    ("post", "/projects"), ("get", "/projects/{}"), ("get", "/projects/{}/members"),
    ("post", "/projects/{}/members"), ("post", "/projects/{}/tasks"), ("get", "/projects/{}/tasks"),
    ("get", "/tasks/{}"), ("patch", "/tasks/{}"),
]


def test_openapi_documents_response_schemas(client):
    response = client.get("/openapi.json")
    spec = expect_status(response, 200)
    paths = {re.sub(r"\{[^}]+\}", "{}", path): item for path, item in spec.get("paths", {}).items()}
    undocumented = []
    for method, path in DOCUMENTED:
        operation = paths.get(path, {}).get(method)
        shown = f"{method.upper()} {path.replace('{}', '{id}')}"
        if operation is None:
            undocumented.append(f"{shown} (not found)")
            continue
        success = [code for code in operation.get("responses", {}) if code.startswith("2")]
        content = operation["responses"][success[0]].get("content", {}) if success else {}
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" not in schema and "$ref" not in schema.get("items", {}):
            undocumented.append(shown)
    if "delete" not in paths.get("/projects/{}/members/{}", {}):
        undocumented.append("DELETE /projects/{id}/members/{id} (not found)")
    if undocumented:
        raise CheckFailed("Expected every route's success response to be documented by a response schema "
                          "(response_model), but these have none in /openapi.json: " + ", ".join(undocumented))
    schemas = spec.get("components", {}).get("schemas", {})
    leaking = sorted(name for name, schema in schemas.items()
                     if {"hashed_password", "invite_code", "password_hash"} & set(schema.get("properties", {})))
    if leaking:
        raise CheckFailed(f"These schemas in /openapi.json expose internal fields: {leaking}.")


# --- Task 4: rate limits ------------------------------------------------------------------------------


def expect_429(response, window: int, why: str) -> int:
    expect_status(response, 429, why)
    expect_detail(response, "a 429 says why")
    value = response.headers.get("retry-after", "")
    if not value.isdigit() or not 1 <= int(value) <= window:
        raise CheckFailed(f"Expected a Retry-After header with a whole number of seconds from 1 to {window}, got "
                          f"{value or 'no such header'!r}.\n{exchange(response)}")
    return int(value)


def test_login_is_rate_limited(client):
    sign_up(client, "ada@example.com")
    sign_up(client, "bob@example.com")
    for number in range(LOGIN_LIMIT):
        password = PASSWORD if number % 2 == 0 else "a wrong password"
        response = log_in(client, "ada@example.com", password)
        expect_status(response, 200 if password == PASSWORD else 401,
                      f"sign-in attempt {number + 1} of {LOGIN_LIMIT} allowed in {LOGIN_WINDOW} seconds")
    wait = expect_429(log_in(client, "ada@example.com"), LOGIN_WINDOW,
                      f"attempt {LOGIN_LIMIT + 1} within {LOGIN_WINDOW} seconds, right or wrong passwords alike")
    refused_at = time.monotonic()  # what follows runs while ada waits
    expect_401(log_in(client, "Ada@example.com"), "another username as sent (a capital A): a count of its own, and "
               "no user has it")
    expect_status(log_in(client, "bob@example.com"), 200, "another username is not affected by ada's attempts")
    for number in range(LOGIN_LIMIT):
        expect_401(log_in(client, "nobody@example.com"), f"attempt {number + 1} for a username that no user has")
    expect_429(log_in(client, "nobody@example.com"), LOGIN_WINDOW,
               f"attempt {LOGIN_LIMIT + 1} for a username that no user has: it is limited all the same")
    time.sleep(max(0.0, refused_at + wait + 0.3 - time.monotonic()))
    expect_status(log_in(client, "ada@example.com"), 200,
                  f"a sign-in after waiting the {wait} seconds that Retry-After asked for")


def test_writes_are_rate_limited(client):
    owner, project = team(client)
    other, theirs = team(client, "bob")
    url = f"/projects/{project['id']}/tasks"
    task = new_task(owner, project["id"])
    used = 2  # creating the project and the task
    while used < WRITE_LIMIT:
        if used % 10 == 0:
            response = owner.post(url, json={"title": ""})
            expect_status(response, 422, "an invalid write (it still counts)")
        elif used % 10 == 5:
            response = owner.patch(f"/tasks/{task['id']}", json={"priority": used % 5 + 1})
            expect_status(response, 200, f"write {used + 1} of {WRITE_LIMIT} allowed in {WRITE_WINDOW} seconds")
        else:
            response = owner.post(url, json={"title": f"Task {used}"})
            expect_status(response, 201, f"write {used + 1} of {WRITE_LIMIT} allowed in {WRITE_WINDOW} seconds")
        used += 1
    wait = expect_429(owner.post(url, json={"title": "One too many"}), WRITE_WINDOW,
                      f"write {WRITE_LIMIT + 1} within {WRITE_WINDOW} seconds, invalid ones counted")
    bob = other.who.id
    for method, path, body in [("PATCH", f"/tasks/{task['id']}", {"status": "done"}),
                               ("POST", "/projects", {"name": "One more"}),
                               ("POST", f"/projects/{project['id']}/members", {"user_id": bob}),
                               ("DELETE", f"/projects/{project['id']}/members/{bob}", None)]:
        expect_429(owner.request(method, path, json=body), WRITE_WINDOW,
                   f"{method} {path.replace(str(project['id']), '{id}')} is a write too, and the limit is reached")
    expect_status(owner.get(url, params={"limit": 1}), 200, "reads are not limited")
    expect_401(client.post(url, json={"title": "No token"}), "a request without a token is answered 401 first")
    expect_status(other.post(f"/projects/{theirs['id']}/tasks", json={"title": "Bob's"}), 201,
                  "another user is not affected by ada's writes")
    time.sleep(wait + 0.3)
    expect_status(owner.post(url, json={"title": "After the wait"}), 201,
                  f"a write after waiting the {wait} seconds that Retry-After asked for")

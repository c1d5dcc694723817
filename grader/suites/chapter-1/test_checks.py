"""Chapter 1's hidden checks: validate everything at the boundary.

Each test is one check; its name (without `test_`, dashes for underscores) is the check's id
in `chapter.toml`, where its title and hints live. The boundary checks are derived from
`spec.py` (the statement's schemas as data) for every route that uses a schema; the checks
of behaviour that is not a table (partial updates, paging, conflicts, ordering, stored data)
are written by hand. Every check must fail on the starter code and on the mutants that name
it (`grader verify` proves both).
"""

import json
import re
from datetime import datetime, timedelta

from grader.harness import (
    AppCrashed,
    Blocked,
    app_database,
    CheckFailed,
    body_of,
    exchange,
    expect_equal,
    expect_fields,
    expect_rejected,
    expect_status,
)

from spec import (
    ACCEPT,
    MISSING,
    PROJECT_CREATE,
    PROJECT_PUBLIC,
    TASK_CREATE,
    TASK_PUBLIC,
    TASK_UPDATE,
    TIMESTAMPS,
    UNKNOWN,
    USER_CREATE,
    USER_PUBLIC,
    days_from_today,
    probes,
    valid_body,
)

# The check that covers each route the others use to set the scene: when that route is
# broken, the others are reported as blocked by it instead of failing one by one.
COVERED_BY = {
    "POST /users": "create-user-returns-public-fields",
    "POST /projects": "create-project-returns-public-fields",
    "POST /projects/{id}/tasks": "create-task-applies-defaults",
}


# --- Setting the scene -------------------------------------------------------------------------


def _created(send, route: str, what: str):
    try:
        response = send()
    except AppCrashed as crash:
        raise Blocked(route, COVERED_BY[route], f"{what}: {crash}") from None
    if response.status_code not in (200, 201):
        raise Blocked(route, COVERED_BY[route], f"{what}, got {response.status_code}.\n{exchange(response)}")
    body = body_of(response)
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise Blocked(route, COVERED_BY[route], f"{what}, with its id.\n{exchange(response)}")
    return body


def new_user(client, email="ada@example.com", **overrides):
    payload = valid_body(USER_CREATE, email=email, **overrides)
    return _created(lambda: client.post("/users", json=payload), "POST /users", "creating a valid user")


def new_project(client, owner_id, **overrides):
    payload = valid_body(PROJECT_CREATE, owner_id=owner_id, **overrides)
    return _created(lambda: client.post("/projects", json=payload), "POST /projects", "creating a valid project")


def new_task(client, project_id, **fields):
    payload = valid_body(TASK_CREATE, **fields)
    return _created(lambda: client.post(f"/projects/{project_id}/tasks", json=payload), "POST /projects/{id}/tasks",
                    "creating a valid task")


def project_with_owner(client):
    owner = new_user(client)
    return new_project(client, owner["id"])


# --- Expectations shared by the checks ------------------------------------------------------------


def expect_utc(value, what, response):
    """A timestamp with an offset of zero: `...Z` or `...+00:00`."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        raise CheckFailed(f"Expected {what} to be a UTC timestamp that says so (ending in Z or +00:00), "
                          f"got {value!r}.\n{exchange(response)}")


def expect_public(body, fields, response, what):
    """Exactly the response schema's fields. (How timestamps are written is one rule, graded
    by its own check, so that a naive timestamp is reported once, under its own name.)"""
    expect_fields(body, fields, response, what)


def untimed(body):
    """A body without its timestamps, to compare what a row holds across responses."""
    return {key: value for key, value in body.items() if key not in TIMESTAMPS} if isinstance(body, dict) else body


def expect_list(response, what):
    body = expect_status(response, 200)
    if not isinstance(body, list):
        raise CheckFailed(f"Expected {what} to be a JSON list.\n{exchange(response)}")
    return body


def _send(client, method, url, body):
    return client.request(method, url, json=body)


def check_fields(client, method, url, fields, base, *, partial=False, read_back=None):
    """Send every probe of every field; each must be accepted (showing the stored value) or
    refused with a 422 at that field. `read_back` (PATCH) is the URL whose body must show
    that a refused request changed nothing."""
    cases = [(spec, probe) for spec in fields for probe in probes(spec, partial=partial)]
    for number, (spec, probe) in enumerate(cases):
        body = {key: value for key, value in base.items() if key != spec.name}
        if "email" in body:  # emails are unique: every user this check creates gets its own
            body["email"] = f"user{number}@example.com"
        if probe.value is not MISSING:
            body[spec.name] = probe.value
        before = body_of(client.get(read_back)) if read_back else None
        response = _send(client, method, url, body)
        if probe.outcome == ACCEPT:
            answer = expect_status(response, 201 if method == "POST" else 200, probe.why)
            if probe.stored is not MISSING:
                shown = answer.get(spec.name, "(missing)") if isinstance(answer, dict) else answer
                if shown != probe.stored:
                    raise CheckFailed(f"Expected {spec.name} to be stored as {json.dumps(probe.stored)} ({probe.why}), "
                                      f"got {json.dumps(shown)}.\n{exchange(response)}")
        else:
            expect_rejected(response, ("body", spec.name), probe.why)
            if read_back:
                after = client.get(read_back)
                expect_equal(body_of(after), before, "the task after a refused PATCH (it must change nothing)",
                             after)


def check_unknown_fields(client, url, route, base, method="POST"):
    for name in UNKNOWN[route]:
        value = 1 if name != "is_admin" else True
        response = _send(client, method, url, {**base, name: value})
        expect_rejected(response, ("body", name), f"{route} does not take {name}: unknown fields are refused")


# --- Task 1: users ---------------------------------------------------------------------------------


def test_create_user_returns_public_fields(client):
    payload = {"email": "grace@example.com", "full_name": "  Grace Hopper ", "password": "a long passphrase"}
    response = client.post("/users", json=payload)
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_public(body, USER_PUBLIC, response, "the new user")
    expect_equal({"email": body["email"], "full_name": body["full_name"]},
                 {"email": "grace@example.com", "full_name": "Grace Hopper"}, "the new user's fields", response)


def test_create_user_validates_fields(client):
    check_fields(client, "POST", "/users", USER_CREATE, valid_body(USER_CREATE))


def test_create_user_refuses_unknown_fields(client):
    check_unknown_fields(client, "/users", "POST /users", valid_body(USER_CREATE))


def test_create_user_duplicate_email_conflicts(client):
    new_user(client, email="dup@example.com")
    for email, why in [("dup@example.com", "the email is already taken"),
                       ("dup@EXAMPLE.com", "the same email once EmailStr has lowercased its domain")]:
        response = client.post("/users", json=valid_body(USER_CREATE, email=email, full_name="Someone Else"))
        body = expect_status(response, 409, why)
        if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"].strip():
            raise CheckFailed(f"Expected a body like {{\"detail\": \"...\"}} explaining the conflict.\n"
                              f"{exchange(response)}")
    listed = expect_list(client.get("/users"), "GET /users")
    if len(listed) != 1:
        raise CheckFailed(f"Expected the refused duplicates not to be stored: one user in all.\n{exchange(client.get('/users'))}")


def test_user_reads_hide_private_fields(client):
    response = client.get("/users")
    expect_equal(expect_list(response, "GET /users"), [], "GET /users before any user exists", response)
    created = [new_user(client, email=email) for email in ("zoe@example.com", "adam@example.com", "mia@example.com")]
    for user in created:
        response = client.get(f"/users/{user['id']}")
        body = expect_status(response, 200)
        expect_public(body, USER_PUBLIC, response, "GET /users/{id}'s body")
        expect_equal(untimed(body), untimed(user), "the user read back (the same fields and values as when it was "
                     "created)", response)
    response = client.get("/users")
    listed = expect_list(response, "GET /users")
    for item in listed:
        expect_public(item, USER_PUBLIC, response, "each user in GET /users")
    expect_equal([item.get("email") for item in listed], [user["email"] for user in created],
                 "the users listed, in order of id", response)


# --- Task 2: projects ------------------------------------------------------------------------------


def test_create_project_returns_public_fields(client):
    owner = new_user(client)
    response = client.post("/projects", json={"name": "Apollo", "owner_id": owner["id"]})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_public(body, PROJECT_PUBLIC, response, "the new project")
    expect_equal({"name": body["name"], "description": body["description"], "owner_id": body["owner_id"]},
                 {"name": "Apollo", "description": None, "owner_id": owner["id"]}, "the new project's fields",
                 response)
    response = client.get(f"/projects/{body['id']}")
    read = expect_status(response, 200)
    expect_public(read, PROJECT_PUBLIC, response, "GET /projects/{id}'s body")
    expect_equal(untimed(read), untimed(body), "the project read back (the same as when it was created)", response)


def test_create_project_validates_fields(client):
    new_user(client)
    check_fields(client, "POST", "/projects", PROJECT_CREATE, valid_body(PROJECT_CREATE))


def test_create_project_refuses_unknown_fields(client):
    new_user(client)
    check_unknown_fields(client, "/projects", "POST /projects", valid_body(PROJECT_CREATE))


# --- Task 3: tasks -----------------------------------------------------------------------------------


def test_create_task_applies_defaults(client):
    project = project_with_owner(client)
    response = client.post(f"/projects/{project['id']}/tasks", json={"title": "Book the venue"})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_public(body, TASK_PUBLIC, response, "the new task")
    expected = {"title": "Book the venue", "status": "todo", "priority": 3, "description": None,
                "due_date": None, "assignee_id": None, "project_id": project["id"]}
    expect_equal({key: body[key] for key in expected}, expected, "the new task's fields", response)
    response = client.get(f"/tasks/{body['id']}")
    read = expect_status(response, 200)
    expect_public(read, TASK_PUBLIC, response, "GET /tasks/{id}'s body")
    expect_equal(untimed(read), untimed(body), "the task read back (the same as when it was created)", response)


def test_create_task_validates_fields(client):
    project = project_with_owner(client)
    check_fields(client, "POST", f"/projects/{project['id']}/tasks", TASK_CREATE, valid_body(TASK_CREATE))


def test_create_task_refuses_unknown_fields(client):
    project = project_with_owner(client)
    check_unknown_fields(client, f"/projects/{project['id']}/tasks", "POST /projects/{id}/tasks",
                         valid_body(TASK_CREATE))


# --- Task 4: partial updates --------------------------------------------------------------------------

FULL = {"title": "Write the release notes", "description": "Two pages at most", "status": "in_progress",
        "priority": 4, "assignee_id": 1}
CHANGES = {"title": "Rewrite the release notes", "description": "One page", "status": "done", "priority": 2,
           "due_date": None, "assignee_id": 7}


def _patch_and_compare(client, task, change, why):
    url = f"/tasks/{task['id']}"
    response = client.patch(url, json=change)
    body = expect_status(response, 200, why)
    expected = untimed(task)
    expected.update(change)
    expect_public(body, TASK_PUBLIC, response, "the updated task")
    shown = {key: body.get(key) for key in expected}
    expect_equal(shown, expected, f"the task after PATCH {json.dumps(change)} ({why})", response)
    response = client.get(url)
    read = {key: body_of(response).get(key) for key in expected}
    expect_equal(read, expected, "the task read back after the PATCH", response)
    return {**task, **change, "updated_at": body["updated_at"]}


def test_update_task_changes_only_given_fields(client):
    project = project_with_owner(client)
    due = days_from_today(7)
    full = new_task(client, project["id"], **FULL, due_date=due)
    for name, value in CHANGES.items():
        full = _patch_and_compare(client, full, {name: value if name != "due_date" else days_from_today(9)},
                                  f"a PATCH of {name} alone changes {name} alone")
    empty = new_task(client, project["id"], title="Nothing else set")
    for name in ("status", "priority", "title"):
        empty = _patch_and_compare(client, empty, {name: CHANGES[name]},
                                   f"a PATCH of {name} alone leaves the empty fields empty")
    for name in ("description", "due_date", "assignee_id"):
        full = _patch_and_compare(client, full, {name: None}, f"null clears {name}")
    _patch_and_compare(client, full, {}, "an empty PATCH changes nothing")


def test_update_task_validates_fields(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"], **FULL, due_date=days_from_today(3))
    url = f"/tasks/{task['id']}"
    check_fields(client, "PATCH", url, TASK_UPDATE, {}, partial=True, read_back=url)


def test_update_task_refuses_unknown_fields(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"])
    url = f"/tasks/{task['id']}"
    check_unknown_fields(client, url, "PATCH /tasks/{id}", {"status": "done"}, method="PATCH")
    expect_equal(body_of(client.get(url)).get("status"), "todo", "the status after the refused PATCHes",
                 client.get(url))


def _set_stored_due_date(client, task_id, value):
    """Make a stored due date lie in the past, as time passing would: straight in the database."""
    with app_database(client) as database:
        tables = [row[0] for row in database.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            columns = {row[1] for row in database.execute(f"pragma table_info({quoted})")}
            if {"due_date", "title", "priority"} <= columns:
                database.execute(f"update {quoted} set due_date = ? where id = ?", (value, task_id))
                return
    raise CheckFailed("This check could not find your tasks table (with due_date, title and priority) in the "
                      "app's database.")


def test_stored_past_due_date_stays_readable(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"], title="Renew the domain", due_date=days_from_today(1))
    past = days_from_today(-10)
    _set_stored_due_date(client, task["id"], past)
    url = f"/tasks/{task['id']}"
    response = client.get(url)
    body = expect_status(response, 200, "a task whose due date has passed can still be read")
    expect_equal(body.get("due_date"), past, "the stored due date", response)
    listed = expect_list(client.get(f"/projects/{project['id']}/tasks"), "the project's tasks")
    expect_equal([item.get("due_date") for item in listed], [past], "the listed due date", client.get(url))
    response = client.patch(url, json={"status": "done"})
    body = expect_status(response, 200, "a task whose due date has passed can still be updated")
    expect_equal([body.get("status"), body.get("due_date")], ["done", past], "status and the kept due date",
                 response)
    response = client.patch(url, json={"due_date": past})
    expect_rejected(response, ("body", "due_date"), "sending a date in the past is still refused")


# --- Across the routes --------------------------------------------------------------------------------


def test_missing_resources_return_404(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"])
    routes = [
        ("GET", "/users/{}", None), ("GET", "/projects/{}", None), ("GET", "/tasks/{}", None),
        ("PATCH", "/tasks/{}", {"status": "done"}), ("POST", "/projects/{}/tasks", {"title": "Orphan"}),
        ("GET", "/projects/{}/tasks", None),
    ]
    for method, pattern, payload in routes:
        for missing in (999, 0, -1):
            response = client.request(method, pattern.format(missing), json=payload)
            body = expect_status(response, 404, f"no row has id {missing}")
            if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"].strip():
                raise CheckFailed(f"Expected a 404 body like {{\"detail\": \"...\"}}.\n{exchange(response)}")
        response = client.request(method, pattern.format("abc"), json=payload)
        expect_rejected(response, ("path",), "an id in the path is an integer")
    response = client.post("/projects", json=valid_body(PROJECT_CREATE, owner_id=999))
    body = expect_status(response, 404, "owner_id 999 names no user")
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"].strip():
        raise CheckFailed(f"Expected a 404 body like {{\"detail\": \"...\"}}.\n{exchange(response)}")
    expect_status(client.get(f"/projects/{project['id']}"), 200, "this project exists")
    expect_status(client.get(f"/tasks/{task['id']}"), 200, "this task exists")


def test_timestamps_are_utc_everywhere(client):
    user = new_user(client)
    project = new_project(client, user["id"])
    task = new_task(client, project["id"])
    created = {"the user": (user, f"/users/{user['id']}"), "the project": (project, f"/projects/{project['id']}"),
               "the task": (task, f"/tasks/{task['id']}")}
    for what, (body, url) in created.items():
        response = client.get(url)
        read = expect_status(response, 200)
        for name in TIMESTAMPS:
            if name in body:
                expect_utc(body[name], f"{name} when {what} was created", response)
                expect_utc(read.get(name), f"{name} when {what} is read back", response)
                if datetime.fromisoformat(body[name].replace("Z", "+00:00")) != datetime.fromisoformat(
                        read[name].replace("Z", "+00:00")):
                    raise CheckFailed(f"Expected {what}'s {name} to be the same moment when created and when read "
                                      f"back: {body[name]} then {read[name]}.\n{exchange(response)}")
    for url, what in [("/users", "each user listed"), (f"/projects/{project['id']}/tasks", "each task listed")]:
        response = client.get(url)
        for item in expect_list(response, what):
            for name in TIMESTAMPS:
                if isinstance(item, dict) and name in item:
                    expect_utc(item[name], f"{name} of {what}", response)
    response = client.patch(f"/tasks/{task['id']}", json={"status": "done"})
    answer = expect_status(response, 200)
    for name in TIMESTAMPS:
        expect_utc(answer.get(name), f"{name} after a PATCH", response)


# --- Task 5: listing tasks ------------------------------------------------------------------------------


def test_list_tasks_validates_query(client):
    project = project_with_owner(client)
    new_task(client, project["id"])
    url = f"/projects/{project['id']}/tasks"
    for query, loc, why in [
        ({"limit": 0}, ("query", "limit"), "limit is from 1 to 100"),
        ({"limit": 101}, ("query", "limit"), "limit is from 1 to 100"),
        ({"limit": "ten"}, ("query", "limit"), "limit is an integer"),
        ({"offset": -1}, ("query", "offset"), "offset is 0 or more"),
        ({"offset": "x"}, ("query", "offset"), "offset is an integer"),
        ({"status": "blocked"}, ("query", "status"), "status is one of todo, in_progress, done"),
        ({"status": "TODO"}, ("query", "status"), "the statuses are lower-case, exactly"),
    ]:
        expect_rejected(client.get(url, params=query), loc, why)
    for query in ({"limit": 1}, {"limit": 100}, {"offset": 0}, {"status": "todo"}):
        response = client.get(url, params=query)
        expect_equal(len(expect_list(response, f"the tasks with {query}")), 1, f"the number of tasks with {query}",
                     response)


def test_list_tasks_filters_and_pages(client):
    project = project_with_owner(client)
    other = new_project(client, project["owner_id"], name="Other")
    url = f"/projects/{project['id']}/tasks"
    response = client.get(url)
    expect_equal(expect_list(response, "the tasks of a project without any"), [], "an empty project's tasks",
                 response)
    for number in range(25):
        new_task(client, project["id"], title=f"Task {number}", status="done" if number % 5 == 0 else "todo")
    new_task(client, other["id"], title="Someone else's task", status="done")
    response = client.get(url)
    page = expect_list(response, "the default page")
    for item in page:
        expect_public(item, TASK_PUBLIC, response, "each listed task")
    expect_equal([item.get("title") for item in page], [f"Task {n}" for n in range(20)],
                 "the default page: the first 20 tasks, in order of id", response)
    for query, titles in [
        ({"limit": 3, "offset": 1}, ["Task 1", "Task 2", "Task 3"]),
        ({"limit": 100}, [f"Task {n}" for n in range(25)]),
        ({"offset": 23}, ["Task 23", "Task 24"]),
        ({"offset": 25}, []),
        ({"status": "done", "limit": 100}, ["Task 0", "Task 5", "Task 10", "Task 15", "Task 20"]),
        ({"status": "done", "limit": 2, "offset": 1}, ["Task 5", "Task 10"]),
        ({"status": "in_progress"}, []),
    ]:
        response = client.get(url, params=query)
        shown = [item.get("title") for item in expect_list(response, f"the tasks with {query}")]
        expect_equal(shown, titles, f"the titles with {query} (status filters first, then limit and offset)",
                     response)


def test_openapi_documents_response_schemas(client):
    response = client.get("/openapi.json")
    spec = expect_status(response, 200)
    paths = {re.sub(r"\{[^}]+\}", "{}", path): item for path, item in spec.get("paths", {}).items()}
    operations = [
        ("post", "/users"), ("get", "/users"), ("get", "/users/{}"), ("post", "/projects"),
        ("get", "/projects/{}"), ("post", "/projects/{}/tasks"), ("get", "/projects/{}/tasks"),
        ("get", "/tasks/{}"), ("patch", "/tasks/{}"),
    ]
    undocumented = []
    for method, path in operations:
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
    if undocumented:
        raise CheckFailed(
            "Expected every route's success response to be documented by a response schema "
            "(response_model), but these have none in /openapi.json: " + ", ".join(undocumented)
        )
    schemas = spec.get("components", {}).get("schemas", {})
    leaking = sorted(name for name, schema in schemas.items()
                     if {"hashed_password", "invite_code"} & set(schema.get("properties", {})))
    if leaking:
        raise CheckFailed(f"These schemas in /openapi.json expose internal fields: {leaking}.")

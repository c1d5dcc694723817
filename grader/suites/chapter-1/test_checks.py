"""Chapter 1's hidden checks: validate everything at the boundary.

Each test is one check; its name (without `test_`, dashes for underscores) is the check's id
in `chapter.toml`, where its title and hints live. Every check must fail on the starter code
and on the mutants that name it (`grader verify` proves both).
"""

from datetime import date, timedelta

from grader.harness import (
    CheckFailed,
    body_of,
    exchange,
    expect_equal,
    expect_fields,
    expect_rejected,
    expect_status,
)

USER_FIELDS = {"id", "email", "full_name", "created_at"}
PROJECT_FIELDS = {"id", "name", "description", "owner_id", "created_at"}
TASK_FIELDS = {
    "id", "project_id", "title", "description", "status", "priority",
    "due_date", "assignee_id", "created_at", "updated_at",
}


# --- Helpers that set the scene. They accept 200 or 201: the status is checked elsewhere.


def new_user(client, email="ada@example.com", **overrides):
    payload = {"email": email, "full_name": "Ada Lovelace", "password": "correct horse battery"}
    payload.update(overrides)
    response = client.post("/users", json=payload)
    return expect_status(response, {200, 201}, "setting up: a valid user must be created")


def new_project(client, owner_id, **overrides):
    payload = {"name": "Launch", "description": "Ship version 1", "owner_id": owner_id}
    payload.update(overrides)
    response = client.post("/projects", json=payload)
    return expect_status(response, {200, 201}, "setting up: a valid project must be created")


def new_task(client, project_id, **fields):
    payload = {"title": "Write the release notes", **fields}
    response = client.post(f"/projects/{project_id}/tasks", json=payload)
    return expect_status(response, {200, 201}, "setting up: a valid task must be created")


def project_with_owner(client):
    owner = new_user(client)
    return new_project(client, owner["id"])


# --- Task 1: users ---------------------------------------------------------------------


def test_create_user_returns_public_fields(client):
    response = client.post(
        "/users",
        json={"email": "grace@example.com", "full_name": "Grace Hopper", "password": "a long passphrase"},
    )
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_fields(body, USER_FIELDS, response, "the new user")
    expect_equal(body["email"], "grace@example.com", "the email", response)


def test_user_reads_hide_private_fields(client):
    user = new_user(client)
    response = client.get(f"/users/{user['id']}")
    expect_fields(expect_status(response, 200), USER_FIELDS, response, "GET /users/{id}'s body")
    response = client.get("/users")
    listed = expect_status(response, 200)
    if not isinstance(listed, list) or len(listed) != 1:
        raise CheckFailed(f"Expected a JSON list holding the one user.\n{exchange(response)}")
    expect_fields(listed[0], USER_FIELDS, response, "each user in GET /users")


def test_create_user_refuses_unknown_fields(client):
    response = client.post(
        "/users",
        json={"email": "eve@example.com", "full_name": "Eve", "password": "let me be admin", "is_admin": True},
    )
    expect_rejected(response, ("body", "is_admin"), "a client must not choose its own privileges")


def test_create_user_validates_email_and_password(client):
    base = {"email": "alan@example.com", "full_name": "Alan Turing", "password": "enigma machine"}
    cases = [
        ({"email": "not-an-email"}, ("body", "email"), "not an email address"),
        ({"password": "short"}, ("body", "password"), "passwords have at least 8 characters"),
        ({"password": "x" * 129}, ("body", "password"), "passwords have at most 128 characters"),
        ({"full_name": ""}, ("body", "full_name"), "a full name has at least 1 character"),
    ]
    for change, loc, why in cases:
        expect_rejected(client.post("/users", json={**base, **change}), loc, why)
    missing = {key: value for key, value in base.items() if key != "email"}
    expect_rejected(client.post("/users", json=missing), ("body", "email"), "email is required")


def test_create_user_duplicate_email_conflicts(client):
    new_user(client, email="dup@example.com")
    response = client.post(
        "/users", json={"email": "dup@example.com", "full_name": "Someone Else", "password": "another secret"}
    )
    body = expect_status(response, 409, "the email is already taken")
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        raise CheckFailed(f"Expected a body like {{\"detail\": \"...\"}} explaining the conflict.\n{exchange(response)}")


# --- Task 2: projects ------------------------------------------------------------------


def test_project_responses_hide_invite_code(client):
    owner = new_user(client)
    response = client.post("/projects", json={"name": "Apollo", "owner_id": owner["id"]})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_fields(body, PROJECT_FIELDS, response, "the new project")
    expect_equal(body["description"], None, "description when none was sent", response)
    response = client.get(f"/projects/{body['id']}")
    expect_fields(expect_status(response, 200), PROJECT_FIELDS, response, "GET /projects/{id}'s body")


def test_create_project_validates_name(client):
    owner = new_user(client)
    for name, why in [("", "empty"), ("    ", "only whitespace"), ("x" * 101, "longer than 100 characters")]:
        response = client.post("/projects", json={"name": name, "owner_id": owner["id"]})
        expect_rejected(response, ("body", "name"), f"a project name that is {why}")
    response = client.post("/projects", json={"name": "Gemini", "owner_id": owner["id"], "description": "d" * 1001})
    expect_rejected(response, ("body", "description"), "a description longer than 1000 characters")


# --- Task 3: tasks ---------------------------------------------------------------------


def test_create_task_applies_defaults(client):
    project = project_with_owner(client)
    response = client.post(f"/projects/{project['id']}/tasks", json={"title": "Book the venue"})
    body = expect_status(response, 201, "a POST that creates something answers 201 Created")
    expect_fields(body, TASK_FIELDS, response, "the new task")
    expected = {"title": "Book the venue", "status": "todo", "priority": 3, "description": None,
                "due_date": None, "assignee_id": None, "project_id": project["id"]}
    expect_equal({key: body[key] for key in expected}, expected, "the new task's fields", response)


def test_create_task_validates_title(client):
    project = project_with_owner(client)
    url = f"/projects/{project['id']}/tasks"
    for title, why in [("", "an empty title"), ("   ", "a title of only spaces"), ("t" * 201, "a 201-character title")]:
        expect_rejected(client.post(url, json={"title": title}), ("body", "title"), why)
    expect_rejected(client.post(url, json={"priority": 2}), ("body", "title"), "a task without a title")
    response = client.post(url, json={"title": "  Order the cake  "})
    body = expect_status(response, 201, "a valid title")
    expect_equal(body["title"], "Order the cake", "the title, trimmed of surrounding spaces", response)


def test_create_task_validates_priority_and_status(client):
    project = project_with_owner(client)
    url = f"/projects/{project['id']}/tasks"
    for priority in [0, 6, "high"]:
        response = client.post(url, json={"title": "Call the printer", "priority": priority})
        expect_rejected(response, ("body", "priority"), "priority is a whole number from 1 to 5")
    response = client.post(url, json={"title": "Call the printer", "status": "blocked"})
    expect_rejected(response, ("body", "status"), "status is one of todo, in_progress, done")
    response = client.post(url, json={"title": "Call the printer", "priority": 5, "status": "in_progress"})
    body = expect_status(response, 201, "priority 5 and status in_progress are valid")
    expect_equal([body["priority"], body["status"]], [5, "in_progress"], "priority and status", response)


def test_create_task_rejects_past_due_date(client):
    project = project_with_owner(client)
    url = f"/projects/{project['id']}/tasks"
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    expect_rejected(client.post(url, json={"title": "Late", "due_date": yesterday}), ("body", "due_date"),
                    "a due date in the past")
    expect_rejected(client.post(url, json={"title": "Odd", "due_date": "next friday"}), ("body", "due_date"),
                    "a due date that is not a date")
    today = date.today().isoformat()
    response = client.post(url, json={"title": "Today", "due_date": today})
    body = expect_status(response, 201, "a due date of today is allowed")
    expect_equal(body["due_date"], today, "due_date", response)
    response = client.post(url, json={"title": "Some day", "due_date": None})
    body = expect_status(response, 201, "due_date is optional, so null is allowed")
    expect_equal(body["due_date"], None, "due_date", response)


# --- Task 4: partial updates -----------------------------------------------------------


def test_update_task_changes_only_given_fields(client):
    project = project_with_owner(client)
    due = (date.today() + timedelta(days=7)).isoformat()
    task = new_task(client, project["id"], description="Two pages at most", priority=4, due_date=due)
    response = client.patch(f"/tasks/{task['id']}", json={"status": "done"})
    body = expect_status(response, 200, "a valid partial update")
    expected = {"title": task["title"], "description": "Two pages at most", "priority": 4,
                "due_date": due, "status": "done"}
    expect_equal({key: body.get(key) for key in expected}, expected,
                 "the task after changing only its status (fields not sent must keep their values)", response)
    response = client.patch(f"/tasks/{task['id']}", json={"description": None, "due_date": None})
    body = expect_status(response, 200, "description and due_date may be cleared with null")
    expect_equal({key: body.get(key) for key in ("description", "due_date")},
                 {"description": None, "due_date": None}, "the fields after sending null", response)
    response = client.get(f"/tasks/{task['id']}")
    expect_equal(body_of(response).get("priority"), 4, "the stored priority after two updates without it", response)


def test_update_task_validates_values(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"])
    url = f"/tasks/{task['id']}"
    cases = [
        ({"priority": 9}, ("body", "priority"), "priority is from 1 to 5"),
        ({"status": "blocked"}, ("body", "status"), "status is one of todo, in_progress, done"),
        ({"title": None}, ("body", "title"), "a task's title can be changed but not removed"),
        ({"title": "  "}, ("body", "title"), "a title of only spaces"),
        ({"assignee_id": 0}, ("body", "assignee_id"), "an assignee id is a positive integer"),
        ({"due_date": "2001-01-01"}, ("body", "due_date"), "a due date in the past, in an update too"),
        ({"project_id": 2}, ("body", "project_id"), "a task cannot be moved by PATCH: unknown fields are refused"),
    ]
    for payload, loc, why in cases:
        expect_rejected(client.patch(url, json=payload), loc, why)
    response = client.get(url)
    expect_equal(body_of(response).get("title"), task["title"], "the title after the refused updates", response)


def test_missing_resources_return_404(client):
    project = project_with_owner(client)
    task = new_task(client, project["id"])
    for method, url, payload, why in [
        ("GET", "/users/999", None, "no user has id 999"),
        ("GET", "/projects/999", None, "no project has id 999"),
        ("GET", "/tasks/999", None, "no task has id 999"),
        ("PATCH", "/tasks/999", {"status": "done"}, "no task has id 999"),
        ("POST", "/projects/999/tasks", {"title": "Orphan"}, "no project has id 999"),
        ("GET", "/projects/999/tasks", None, "no project has id 999"),
        ("POST", "/projects", {"name": "No owner", "owner_id": 999}, "owner_id 999 names no user"),
    ]:
        expect_status(client.request(method, url, json=payload), 404, why)
    expect_status(client.get(f"/projects/{project['id']}"), 200, "this project exists")
    expect_status(client.get(f"/tasks/{task['id']}"), 200, "this task exists")


# --- Task 5: query parameters and documented responses ---------------------------------


def test_list_tasks_validates_query(client):
    project = project_with_owner(client)
    url = f"/projects/{project['id']}/tasks"
    for query, loc, why in [
        ({"limit": 0}, ("query", "limit"), "limit is from 1 to 100"),
        ({"limit": 101}, ("query", "limit"), "limit is from 1 to 100"),
        ({"offset": -1}, ("query", "offset"), "offset is 0 or more"),
        ({"status": "blocked"}, ("query", "status"), "status is one of todo, in_progress, done"),
    ]:
        expect_rejected(client.get(url, params=query), loc, why)


def test_list_tasks_filters_and_pages(client):
    project = project_with_owner(client)
    url = f"/projects/{project['id']}/tasks"
    for number in range(25):
        new_task(client, project["id"], title=f"Task {number}", status="done" if number % 5 == 0 else "todo")
    response = client.get(url)
    page = expect_status(response, 200)
    if not isinstance(page, list) or len(page) != 20:
        count = len(page) if isinstance(page, list) else "not a list"
        raise CheckFailed(f"Expected the default page to hold 20 tasks, got {count}.\n{exchange(response)}")
    response = client.get(url, params={"limit": 3, "offset": 1})
    titles = [item.get("title") for item in expect_status(response, 200)]
    expect_equal(titles, ["Task 1", "Task 2", "Task 3"], "the titles with limit=3&offset=1", response)
    response = client.get(url, params={"status": "done", "limit": 100})
    done = [item.get("title") for item in expect_status(response, 200)]
    expect_equal(done, ["Task 0", "Task 5", "Task 10", "Task 15", "Task 20"], "the titles with status=done", response)


def test_openapi_documents_response_schemas(client):
    response = client.get("/openapi.json")
    spec = expect_status(response, 200)
    operations = [
        ("post", "/users"), ("get", "/users"), ("get", "/users/{user_id}"), ("post", "/projects"),
        ("get", "/projects/{project_id}"), ("post", "/projects/{project_id}/tasks"),
        ("get", "/projects/{project_id}/tasks"), ("get", "/tasks/{task_id}"), ("patch", "/tasks/{task_id}"),
    ]
    undocumented = []
    for method, path in operations:
        operation = spec.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            undocumented.append(f"{method.upper()} {path} (not found)")
            continue
        success = [code for code in operation.get("responses", {}) if code.startswith("2")]
        content = operation["responses"][success[0]].get("content", {}) if success else {}
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" not in schema and "$ref" not in schema.get("items", {}):
            undocumented.append(f"{method.upper()} {path}")
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

"""Chapter 4's own checks: async where it matters, and nowhere it does not.

Chapter 3's checks run first, and with them Chapter 2's (`inherit` in chapter.toml). The checks
below drive a real uvicorn server and watch the outside world the app talks to: the webhook
service and the SMTP server of conftest.py, whose behaviour a check sets (slow, failing,
hanging). Timings are judged against the service's own delay, with wide margins, never as
absolute speeds: a blocking call is many times slower, not a little. Two checks run a script
beside the app, whose report is the learner's side's word: it can make a check fail, and is
quoted as data. Each check must fail on the starter and on the mutants that name it.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from checks_chapter_1 import expect_utc
from checks_chapter_2 import As, add_member, expect_401, expect_detail, new_task, person, team
from checks_chapter_3 import *  # noqa: F401,F403 (Chapters 2 and 3's checks, run first: see `inherit`)
from grader.harness import (
    CheckFailed,
    app_database,
    body_of,
    exchange,
    expect_equal,
    expect_fields,
    expect_status,
    run_in_app,
    script_report,
)

WEBHOOK_TIMEOUT = 2.0  # seconds: config.WEBHOOK_TIMEOUT in the statement
MAIL_FROM = "tracker@example.com"
SMTP_TIMEOUT = 5.0  # seconds: config.SMTP_TIMEOUT
MAX_ATTACHMENT_BYTES = 1_048_576
ATTACHMENT_PUBLIC = frozenset({"id", "task_id", "filename", "content_type", "size", "created_at"})
PUSH_RESULT = frozenset({"event", "status_code"})
SESSION_DEPENDENCY = "tracker.shared.database:get_session"  # the statement's table of names

SLOW = 2.0  # the webhook service's delay while changes that notify are answered, in seconds
CONCURRENT = 12  # pushes sent at once (each holds a pooled database connection: 15 by default)
DELAY = 1.0  # the webhook service's delay while they wait, in seconds
MARK = "@grader-async "


# --- Helpers ------------------------------------------------------------------------------------


def side_client(client, timeout: float) -> httpx.Client:
    """A second client to the same app, for requests sent at the same time as others (the check's
    own client numbers its requests one at a time, to match a crash to its request)."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=client.app.sock_path), base_url="http://tracker",
                        timeout=timeout, trust_env=False)


def push_scene(client):
    """Ada, signed in, with a project and a task in it: (her client, the task)."""
    owner, project = team(client)
    return owner, new_task(owner, project["id"], title="Ship the release")


def expect_event(delivery, name: str, task: dict, why: str) -> None:
    body = delivery.body
    if not isinstance(body, dict) or set(body) != {"event", "task"}:
        raise CheckFailed(f"The webhook service received a body that is not {{\"event\": ..., \"task\": ...}} "
                          f"({why}): {json.dumps(body)[:400]}")
    if body["event"] != name:
        raise CheckFailed(f"Expected the event {name!r} ({why}), received {body['event']!r}.")
    if body["task"] != task:
        raise CheckFailed(f"The event's task is not the task as the API shows it ({why}).\n"
                          f"  expected: {json.dumps(task)[:500]}\n  received: {json.dumps(body['task'])[:500]}")
    if delivery.path != services().WEBHOOK_PATH:
        raise CheckFailed(f"The event went to {delivery.path}, not to {services().WEBHOOK_PATH} ({why}).")


def services():
    import services_chapter_4

    return services_chapter_4


def describe_events(deliveries) -> str:
    if not deliveries:
        return "nothing"
    return "; ".join(json.dumps(item.body)[:160] for item in deliveries[:6]) + (" ..." if len(deliveries) > 6 else "")


def expect_file(response, why: str) -> bytes:
    """A download: status 200 and the file's bytes (not JSON)."""
    if response.status_code != 200:
        expect_status(response, 200, why)
    return response.content


def timed(send):
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


# --- Task 1: waiting on the outside service without blocking --------------------------------------


def _push_burst(client, outside, owner, task, probe: bool):
    """CONCURRENT pushes at once while the service takes DELAY seconds; with `probe`, a cheap
    request in the middle. Returns (results, seconds for all, probe's seconds or None)."""
    outside.webhook.behaviour.delay = DELAY
    patience = DELAY * 3
    results: list = [None] * CONCURRENT
    probe_seconds = None
    with side_client(client, timeout=patience) as side, ThreadPoolExecutor(CONCURRENT + 1) as pool:
        def push(number):
            try:
                results[number] = side.post(f"/tasks/{task['id']}/push", headers=owner.who.headers)
            except httpx.TimeoutException:
                results[number] = "timeout"
            except httpx.TransportError as error:
                results[number] = f"no answer ({type(error).__name__})"

        started = time.monotonic()
        futures = [pool.submit(push, number) for number in range(CONCURRENT)]
        if probe:
            outside.webhook.wait_for(lambda found: len(found) >= 1, DELAY)
            time.sleep(0.1)
            began = time.monotonic()
            try:
                side.get("/openapi.json", timeout=DELAY * 0.8)
                probe_seconds = time.monotonic() - began
            except httpx.TimeoutException:
                probe_seconds = float("inf")
        for future in futures:
            future.result()
        elapsed = time.monotonic() - started
    return results, elapsed, probe_seconds


def test_push_delivers_concurrently(client, outside):
    owner, task = push_scene(client)
    for status in (202, 204):  # any 2xx is success
        outside.webhook.behaviour.status = status
        response = owner.post(f"/tasks/{task['id']}/push")
        body = expect_status(response, 200, f"pushing a task while the outside service answers {status} at once")
        expect_equal(body, {"event": "task.pushed", "status_code": status}, "the push's answer", response)
    outside.webhook.reset()
    response, _ = timed(lambda: owner.post(f"/tasks/{task['id']}/push"))
    body = expect_status(response, 200, "pushing a task while the outside service answers at once")
    expect_fields(body, PUSH_RESULT, response, "the push's answer")
    expect_equal(body, {"event": "task.pushed", "status_code": 200}, "the push's answer", response)
    delivered = outside.webhook.events()
    if len(delivered) != 1:
        raise CheckFailed(f"One push should reach the webhook service once; it received {len(delivered)} "
                          f"requests: {describe_events(delivered)}.\n{exchange(response)}")
    current = body_of(owner.get(f"/tasks/{task['id']}"))
    expect_event(delivered[0], "task.pushed", current, "one push")
    outside.webhook.reset()

    results, elapsed, _ = _push_burst(client, outside, owner, task, probe=False)
    answered = [result for result in results if isinstance(result, httpx.Response)]
    ok = [result for result in answered if result.status_code == 200]
    other = [result for result in answered if result.status_code != 200]
    unanswered = [result for result in results if not isinstance(result, httpx.Response)]
    if other or unanswered or elapsed > DELAY * 3:
        outcome = [f"{len(ok)} were answered 200"]
        if unanswered:
            outcome.append(f"{len(unanswered)} got no answer within {DELAY * 3:g} s (the checks stop waiting there)")
        if other:
            outcome.append(f"{len(other)} were answered otherwise (one: {other[0].status_code} "
                           f"{other[0].text[:200]})")
        raise CheckFailed(
            f"{CONCURRENT} pushes sent at once, while the outside service takes {DELAY:g} s to answer each, "
            f"should all be answered 200 in about {DELAY:g} s (the checks allow {DELAY * 3:g} s): waiting on the "
            f"network must not hold up other requests. After {elapsed:.1f} s, " + ", ".join(outcome) + ". "
            "A blocking call inside `async def` (requests, httpx.post, time.sleep, smtplib) makes them wait "
            "for each other, one after the other.")
    received = outside.webhook.events("task.pushed")
    if len(received) != CONCURRENT:
        raise CheckFailed(f"The webhook service received {len(received)} task.pushed events for {CONCURRENT} "
                          "pushes: each push sends one.")


def test_event_loop_stays_responsive(client, outside):
    owner, task = push_scene(client)
    expect_status(client.get("/openapi.json"), 200, "the OpenAPI document, before the pushes")
    _, elapsed, probe = _push_burst(client, outside, owner, task, probe=True)
    if probe is None or probe > DELAY * 0.8:
        waited = "did not answer within" if probe == float("inf") else f"took {probe:.2f} s, more than"
        raise CheckFailed(
            f"While {CONCURRENT} pushes waited on a slow outside service ({DELAY:g} s each), GET /openapi.json "
            f"{waited} {DELAY * 0.8:g} s. A request that does not touch the outside service must not wait for "
            "those that do: something blocks the event loop (a synchronous HTTP call, time.sleep, or smtplib "
            f"inside `async def`). The pushes took {elapsed:.1f} s in all.")
    # The e-mail, after the answer: while the SMTP server takes its time, the app still answers.
    outside.reset()
    outside.mail.behaviour.delay = 2.0
    expect_status(owner.post(f"/projects/{task['project_id']}/tasks",
                             json={"title": "Mail me", "assignee_id": owner.who.id}), 201, "a task assigned to me")
    if not outside.mail.data_started.wait(5):
        raise CheckFailed("After a task was assigned, no e-mail reached the SMTP server within 5 s.")
    with side_client(client, timeout=1.5) as side:
        began = time.monotonic()
        try:
            side.get("/openapi.json")
            seconds = time.monotonic() - began
        except httpx.TimeoutException:
            seconds = float("inf")
    if seconds > 0.8:
        raise CheckFailed(
            "While the SMTP server took 2 s to accept an assignment e-mail, GET /openapi.json "
            + ("got no answer within 1.5 s" if seconds == float("inf") else f"took {seconds:.2f} s")
            + " (the checks allow 0.8 s): the e-mail is sent with a blocking call (smtplib) on the event loop. "
            "Await aiosmtplib instead.")


# Beside the app: import it with httpx.AsyncClient watched, run its lifespan through a
# TestClient, push a task three times, shut it down, and report which AsyncClients were made
# when, whether each was closed, and whether the push route is a coroutine function.
CLIENTS = r'''
import importlib, inspect, json, sys

sys.path.insert(0, sys.argv[1])
import httpx

made = []
phase = ["import"]
original = httpx.AsyncClient.__init__


def watched(self, *args, **kwargs):
    original(self, *args, **kwargs)
    made.append((phase[0], self))


httpx.AsyncClient.__init__ = watched
report = {}
try:
    module = importlib.import_module(sys.argv[2])
    app = getattr(module, "app")
    from fastapi.routing import APIRoute
    try:
        from fastapi.routing import iter_route_contexts
        routes = [context.route for context in iter_route_contexts(app.routes)]
    except ImportError:
        routes = list(app.routes)
    pushes = [route for route in routes if isinstance(route, APIRoute) and route.path == "/tasks/{task_id}/push"]
    report["push_async"] = [inspect.iscoroutinefunction(route.endpoint) for route in pushes]
    from fastapi.testclient import TestClient

    phase[0] = "startup"
    with TestClient(app) as client:
        phase[0] = "requests"
        user = {"email": "ada@example.com", "full_name": "Ada", "password": "correct horse battery"}
        statuses = [client.post("/users", json=user).status_code]
        token = client.post("/token", data={"username": user["email"], "password": user["password"]}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        project = client.post("/projects", json={"name": "Apollo"}, headers=headers).json()
        task = client.post(f"/projects/{project['id']}/tasks", json={"title": "Plan"}, headers=headers).json()
        for _ in range(3):
            statuses.append(client.post(f"/tasks/{task['id']}/push", headers=headers).status_code)
        # Background work too: an assignment and a completion send events after their answers.
        me = client.get("/users/me", headers=headers).json()
        assigned = client.post(f"/projects/{project['id']}/tasks", json={"title": "Mine", "assignee_id": me["id"]},
                               headers=headers).json()
        statuses.append(client.patch(f"/tasks/{assigned['id']}", json={"status": "done"}, headers=headers).status_code)
        report["statuses"] = statuses
        phase[0] = "shutdown"
    report["clients"] = [{"phase": when, "closed": one.is_closed} for when, one in made]
except BaseException as error:
    report["error"] = f"{type(error).__name__}: {error}"[:400]
    report["clients"] = [{"phase": when, "closed": one.is_closed} for when, one in made]
print("\n" + sys.argv[-1] + json.dumps(report), flush=True)
'''


def test_push_uses_one_shared_async_client(outside):
    report = script_report(run_in_app(CLIENTS, "tracker.main", MARK), MARK,
                           "Starting your app with a TestClient and pushing a task")
    if report.get("push_async") != [True]:
        raise CheckFailed("POST /tasks/{task_id}/push should be one route whose function is `async def` (it waits "
                          f"on the network and nothing else); found: {report.get('push_async')} (True: async def).")
    if isinstance(report.get("error"), str):
        raise CheckFailed(f"Starting your app with a TestClient and pushing a task three times raised: "
                          f"{report['error']}")
    statuses = report.get("statuses")
    if statuses != [201, 200, 200, 200, 200]:
        raise CheckFailed(f"Signing up, pushing a task three times and completing an assigned task, beside your app, "
                          f"answered {statuses} (expected [201, 200, 200, 200, 200]).")
    clients = [item for item in report.get("clients", []) if isinstance(item, dict)]
    by_phase = {when: [item for item in clients if item.get("phase") == when]
                for when in ("import", "startup", "requests", "shutdown")}
    if by_phase["import"]:
        raise CheckFailed(f"Importing your app made {len(by_phase['import'])} httpx.AsyncClient(s): make the client "
                          "in the lifespan instead, so that it belongs to the running app (and its event loop) and "
                          "is closed when the app stops.")
    if len(by_phase["startup"]) != 1:
        raise CheckFailed(f"Your app's startup (its lifespan) made {len(by_phase['startup'])} httpx.AsyncClient(s); "
                          "it should make exactly one, shared by every request.")
    if by_phase["requests"]:
        raise CheckFailed(f"Three pushes, an assignment and a completion made {len(by_phase['requests'])} new "
                          "httpx.AsyncClient(s): every call to the outside service, in a push or in a background "
                          "task, should use the one client the lifespan made (through a dependency, or "
                          "request.app.state), so that its connections are reused.")
    if not all(item.get("closed") is True for item in by_phase["startup"]):
        raise CheckFailed("After your app shut down, its httpx.AsyncClient was still open: close it in the lifespan "
                          "after `yield` (`async with httpx.AsyncClient(...) as client:` around the yield does it).")
    if len(outside.webhook.events("task.pushed")) != 3:  # the events of the background work are not counted
        raise CheckFailed(f"Three pushes beside your app reached the webhook service "
                          f"{len(outside.webhook.events('task.pushed'))} times.")


# Beside the app: every function that declares the session dependency directly (a route's
# function, or a dependency's), and whether it is a coroutine function.
SESSION_USERS = r'''
import importlib, inspect, json, sys

sys.path.insert(0, sys.argv[1])
where = sys.argv[2]
report = {}
try:
    module_name, _, name = where.partition(":")
    get_session = getattr(importlib.import_module(module_name), name)
    app = getattr(importlib.import_module(sys.argv[3]), "app")
    from fastapi.routing import APIRoute
    try:
        from fastapi.routing import iter_route_contexts
        routes = [context.route for context in iter_route_contexts(app.routes)]
    except ImportError:
        routes = list(app.routes)
    found, seen = [], set()

    def visit(dependant, route):
        subs = list(dependant.dependencies)
        if any(sub.call is get_session for sub in subs) and dependant.call is not None:
            call = dependant.call
            target = call if inspect.isfunction(call) or inspect.ismethod(call) else getattr(call, "__call__", call)
            key = (route, getattr(call, "__qualname__", repr(call)))
            if key not in seen:
                seen.add(key)
                found.append({"route": route, "function": getattr(call, "__qualname__", repr(call))[:120],
                              "module": str(getattr(call, "__module__", "?")),
                              "async": inspect.iscoroutinefunction(target)
                              or inspect.isasyncgenfunction(target)})
        for sub in subs:
            visit(sub, route)

    for route in routes:
        if isinstance(route, APIRoute):
            visit(route.dependant, " ".join(sorted(route.methods)) + " " + route.path)
    report["users"] = found
    # The dependency itself: an async generator around a synchronous session runs its
    # commit and close on the event loop.
    report["session_async"] = inspect.iscoroutinefunction(get_session) or inspect.isasyncgenfunction(get_session)
except BaseException as error:
    report["error"] = f"{type(error).__name__}: {error}"[:400]
print("\n" + sys.argv[-1] + json.dumps(report), flush=True)
'''


def test_database_work_stays_in_def():
    report = script_report(run_in_app(SESSION_USERS, SESSION_DEPENDENCY, "tracker.main", MARK), MARK,
                     "Looking at your app's routes and dependencies")
    if isinstance(report.get("error"), str):
        raise CheckFailed(f"Looking for {SESSION_DEPENDENCY} and the functions that depend on it, beside your app, "
                          f"raised: {report['error']}")
    users = [item for item in report.get("users", []) if isinstance(item, dict)]
    if len({item.get("route") for item in users}) < 10:
        raise CheckFailed(f"Only {len(users)} routes' functions or dependencies take the session from "
                          f"{SESSION_DEPENDENCY}: the checks find the database work through that dependency "
                          "(`SessionDep`), as every chapter before used it.")
    if report.get("session_async") is not False:
        raise CheckFailed(f"{SESSION_DEPENDENCY} is `async def`: the session it yields is synchronous, so its commit, "
                          "rollback and close would run on the event loop. Make it a plain `def` generator.")
    wrong = [item for item in users if item.get("async")]
    if wrong:
        lines = "\n".join(f"  {item.get('module')}.{item.get('function')} (used by {item.get('route')})"
                          for item in wrong[:8])
        raise CheckFailed(
            "These functions take the database session and are `async def`:\n" + lines + "\nSQLAlchemy's session "
            "is synchronous: each query blocks the thread it runs on. In `async def` that thread is the event "
            "loop's, and every other request waits. Make them plain `def`: FastAPI runs them in its thread pool.")


def test_failing_service_gives_502(client, outside):
    owner, task = push_scene(client)
    for mode, status, what in [("error", 500, "answers 500"), ("error", 404, "answers 404"),
                               ("error", 302, "answers 302 (a redirect is not a 2xx)"),
                               ("close", None, "closes the connection without answering")]:
        outside.webhook.reset()
        outside.webhook.behaviour.mode, outside.webhook.behaviour.status = mode, status or 200
        response, seconds = timed(lambda: owner.post(f"/tasks/{task['id']}/push"))
        tries = len(outside.webhook.events())
        if tries != 1:
            raise CheckFailed(f"A push while the outside service {what} reached it {tries} times: a push sends the "
                              f"event once, and answers 502 when it fails (no retries).\n{exchange(response)}")
        expect_status(response, 502, f"a push while the outside service {what}")
        expect_detail(response, f"a push while the outside service {what}")
        if seconds > 1.0:
            raise CheckFailed(f"The 502 for a push while the outside service {what} took {seconds:.1f} s (the checks "
                              "allow 1 s): an error answer is final at once, with no retries inside the request.")
    outside.webhook.reset()
    expect_status(owner.post(f"/tasks/{task['id']}/push"), 200, "a push once the outside service works again")


def test_hanging_service_gives_504(client, outside):
    owner, task = push_scene(client)
    outside.webhook.behaviour.mode = "hang"
    with side_client(client, timeout=WEBHOOK_TIMEOUT + 6) as side:
        try:
            response, seconds = timed(lambda: side.post(f"/tasks/{task['id']}/push", headers=owner.who.headers))
        except httpx.TimeoutException:
            raise CheckFailed(f"A push while the outside service never answers got no answer within "
                              f"{WEBHOOK_TIMEOUT + 6:g} s. Every call to it needs a timeout "
                              f"(`httpx.Timeout({WEBHOOK_TIMEOUT:g})`), and a timeout becomes a 504.") from None
    expect_status(response, 504, "a push while the outside service never answers")
    expect_detail(response, "a push while the outside service never answers")
    low, high = WEBHOOK_TIMEOUT * 0.75, WEBHOOK_TIMEOUT + 1.5
    if not low <= seconds <= high:
        raise CheckFailed(f"The 504 came after {seconds:.1f} s; the statement's timeout is {WEBHOOK_TIMEOUT:g} s, "
                          f"so it should come after about that (the checks allow {low:g} to {high:g} s).")
    outside.webhook.reset()
    expect_status(owner.post(f"/tasks/{task['id']}/push"), 200, "a push once the outside service answers again")


# --- Task 2: assignments and completions, told after the answer ------------------------------------


def assignment_scene(client):
    owner, project = team(client)
    bob = person(client, "bob")
    cleo = person(client, "cleo")
    for member in (bob, cleo):
        add_member(owner, project["id"], member.id)
    return owner, project, bob, cleo


def test_changes_answer_before_notifying(client, outside):
    owner, project, bob, cleo = assignment_scene(client)
    outside.webhook.behaviour.delay = SLOW
    url = f"/projects/{project['id']}/tasks"
    response, seconds = timed(lambda: owner.post(url, json={"title": "Write the notes", "assignee_id": bob.id}))
    body = expect_status(response, 201, "a task created with an assignee")
    steps = [("creating a task with an assignee", response, seconds)]
    for change in ({"assignee_id": cleo.id}, {"status": "done"}):
        response, seconds = timed(lambda: owner.patch(f"/tasks/{body['id']}", json=change))
        expect_status(response, 200, f"PATCH {json.dumps(change)}")
        steps.append((f"PATCH /tasks/{{id}} {json.dumps(change)}", response, seconds))
    for what, response, seconds in steps:
        if seconds > SLOW / 2:
            raise CheckFailed(f"{what.capitalize()} took {seconds:.1f} s to answer while the outside service takes {SLOW:g} s "
                              f"(the checks allow {SLOW / 2:g} s): "
                              "the answer should not wait for the webhook or the e-mail. Hand them to "
                              "`BackgroundTasks`, which runs them after the response is sent.\n" + exchange(response))
    found = outside.webhook.wait_for(lambda items: len(items) >= 3, 8)
    names = [item.body.get("event") if isinstance(item.body, dict) else None for item in found]
    if sorted(map(str, names)) != ["task.assigned", "task.assigned", "task.completed"]:
        raise CheckFailed(f"After those three changes the webhook service received {describe_events(found)}; expected "
                          "two task.assigned events and one task.completed, each sent after its answer.")


def _mail_for(outside, address, seconds=5):
    return outside.mail.wait_for(lambda mails: any(address in mail.rcpt_tos for mail in mails), seconds)


def test_assignment_sends_event_and_mail(client, outside):
    owner, project, bob, cleo = assignment_scene(client)
    url = f"/projects/{project['id']}/tasks"
    response = owner.post(url, json={"title": "Book the venue", "assignee_id": bob.id})
    task = expect_status(response, 201, "a task created with an assignee")
    found = outside.webhook.wait_for(lambda items: len(items) >= 1, 5)
    if len(found) != 1:
        raise CheckFailed(f"Creating a task assigned to a user should send one task.assigned event; the webhook "
                          f"service received {describe_events(found)}.\n{exchange(response)}")
    expect_event(found[0], "task.assigned", task, "a task created with an assignee")
    mails = _mail_for(outside, bob.email)
    if len(mails) != 1 or mails[0].rcpt_tos != [bob.email]:
        raise CheckFailed(f"Creating a task assigned to {bob.email} should send one e-mail, to {bob.email} only; the "
                          f"SMTP server received {len(mails)}: " + "; ".join(mail.describe() for mail in mails))
    mail = mails[0]
    expected = {"From": MAIL_FROM, "To": bob.email, "Subject": "Task assigned: Book the venue"}
    seen = {key: str(mail.message.get(key, "")) for key in expected}
    if seen != expected:
        raise CheckFailed(f"The assignment e-mail's headers are {seen}; expected {expected}.")
    if mail.mail_from != MAIL_FROM:
        raise CheckFailed(f"The e-mail was sent from {mail.mail_from!r} (the SMTP envelope); expected {MAIL_FROM!r}.")

    outside.reset()
    response = owner.patch(f"/tasks/{task['id']}", json={"assignee_id": cleo.id})
    changed = expect_status(response, 200, "giving the task to another member")
    found = outside.webhook.wait_for(lambda items: len(items) >= 1, 5)
    if len(found) != 1:
        raise CheckFailed(f"Giving a task to another user should send one task.assigned event; the webhook service "
                          f"received {describe_events(found)}.\n{exchange(response)}")
    expect_event(found[0], "task.assigned", changed, "a task given to another user")
    mails = _mail_for(outside, cleo.email)
    if [mail.rcpt_tos for mail in mails] != [[cleo.email]]:
        raise CheckFailed(f"Giving a task to {cleo.email} should e-mail {cleo.email} once; the SMTP server received: "
                          + ("; ".join(mail.describe() for mail in mails) or "nothing"))

    outside.reset()
    quiet = [{"assignee_id": cleo.id}, {"title": "Book the big venue"}, {"assignee_id": None}, {"priority": 5}]
    for change in quiet:
        expect_status(owner.patch(f"/tasks/{task['id']}", json=change), 200, f"PATCH {json.dumps(change)}")
    nobody = owner.post(url, json={"title": "For nobody we know", "assignee_id": 9999})
    ghost = expect_status(nobody, 201, "a task assigned to a user id nobody has (not checked, as in Chapter 1)")
    found = outside.webhook.wait_for(lambda items: len(items) >= 1, 5)
    time.sleep(0.5)
    found = outside.webhook.events()
    if len(found) != 1:
        raise CheckFailed(
            f"After {', '.join(json.dumps(change) for change in quiet)} (none of which gives the task to someone new), "
            f"and a task created for user 9999, the webhook service received {describe_events(found)}; expected only "
            "the task.assigned event of the new task.")
    expect_event(found[0], "task.assigned", ghost, "a task assigned to a user id nobody has")
    if outside.mail.received():
        raise CheckFailed("No e-mail should go out for changes that give the task to nobody new, nor for an assignee "
                          "who does not exist; the SMTP server received: "
                          + "; ".join(mail.describe() for mail in outside.mail.received()))

    # One failed notification does not stop the others.
    outside.reset()
    outside.webhook.behaviour.mode = "close"
    response = owner.post(url, json={"title": "While the service is down", "assignee_id": bob.id})
    expect_status(response, 201, "a task created with an assignee while the webhook service is down")
    mails = _mail_for(outside, bob.email)
    if [mail.rcpt_tos for mail in mails] != [[bob.email]]:
        raise CheckFailed("While the webhook service drops every connection, creating a task assigned to "
                          f"{bob.email} should still e-mail them once (a failed event must not stop the e-mail); "
                          "the SMTP server received: " + ("; ".join(mail.describe() for mail in mails) or "nothing")
                          + f".\n{exchange(response)}")


def test_completion_sends_event(client, outside):
    owner, project = team(client)
    task = new_task(owner, project["id"], title="Ship it", status="in_progress", assignee_id=owner.who.id)
    outside.webhook.wait_for(lambda items: len(items) >= 1, 5)
    outside.mail.wait_for(lambda mails: len(mails) >= 1, 5)
    outside.reset()
    response = owner.patch(f"/tasks/{task['id']}", json={"status": "done"})
    done = expect_status(response, 200, "marking a task done")
    found = outside.webhook.wait_for(lambda items: len(items) >= 1, 5)
    if len(found) != 1:
        raise CheckFailed(f"Marking a task done should send one task.completed event; the webhook service received "
                          f"{describe_events(found)}.\n{exchange(response)}")
    expect_event(found[0], "task.completed", done, "a task marked done")
    time.sleep(0.5)
    if outside.mail.received():
        raise CheckFailed("Completing a task sends no e-mail (not even to its assignee); the SMTP server received: "
                          + "; ".join(mail.describe() for mail in outside.mail.received()))
    outside.reset()
    for change in ({"status": "done"}, {"title": "Shipped"}, {"status": "todo"}, {"status": "in_progress"}):
        expect_status(owner.patch(f"/tasks/{task['id']}", json=change), 200, f"PATCH {json.dumps(change)}")
    new_task(owner, project["id"], title="Done from the start", status="done")
    time.sleep(0.8)
    quiet = outside.webhook.events()
    # One PATCH that gives a task to someone and completes it: assigned first, then completed.
    other = new_task(owner, project["id"], title="Hand over and finish")
    me = owner.who.id
    if not quiet:
        outside.reset()
        both = owner.patch(f"/tasks/{other['id']}", json={"assignee_id": me, "status": "done"})
        expect_status(both, 200, "a PATCH that assigns and completes a task at once")
        found = outside.webhook.wait_for(lambda items: len(items) >= 2, 8)
        names = [item.body.get("event") if isinstance(item.body, dict) else None for item in found]
        if names != ["task.assigned", "task.completed"]:
            raise CheckFailed(f"A PATCH that assigns and completes a task at once should send task.assigned, then "
                              f"task.completed; the webhook service received {names}.\n{exchange(both)}")
        outside.reset()
    if quiet:
        raise CheckFailed("task.completed is sent only when a PATCH changes a task's status to done: not for a task "
                          "already done, not for other changes, not for a task created done. The webhook service "
                          f"received: {describe_events(quiet)}")
    if outside.mail.received():
        raise CheckFailed("Completing a task sends no e-mail; the SMTP server received: "
                          + "; ".join(mail.describe() for mail in outside.mail.received()))


def test_mail_gives_up_after_its_timeout(client, outside):
    owner, project, bob, _ = assignment_scene(client)
    outside.mail.behaviour.hang = True
    response = owner.post(f"/projects/{project['id']}/tasks", json={"title": "Into the void", "assignee_id": bob.id})
    expect_status(response, 201, "a task assigned while the SMTP server never accepts a message")
    started = time.monotonic()
    while not outside.mail.abandoned and time.monotonic() - started < SMTP_TIMEOUT + 4:
        time.sleep(0.05)
    if not outside.mail.abandoned:
        raise CheckFailed(f"The SMTP server accepted the connection and never answered the message; your app was "
                          f"still waiting {SMTP_TIMEOUT + 4:g} s later. Give the SMTP client SMTP_TIMEOUT "
                          f"({SMTP_TIMEOUT:g} s): `aiosmtplib.send(..., timeout=SMTP_TIMEOUT)`.")
    waited = outside.mail.abandoned[0]
    if not SMTP_TIMEOUT - 1.5 <= waited <= SMTP_TIMEOUT + 2:
        raise CheckFailed(f"Your app gave up on an SMTP server that never answered after {waited:.1f} s; the "
                          f"statement's SMTP_TIMEOUT is {SMTP_TIMEOUT:g} s (the checks allow "
                          f"{SMTP_TIMEOUT - 1.5:g} to {SMTP_TIMEOUT + 2:g} s).")
    outside.reset()
    task = body_of(response)
    expect_status(owner.post(f"/tasks/{task['id']}/push"), 200, "a push after the SMTP server hung")


# --- Task 3: attachments ----------------------------------------------------------------------------


def upload(signed_in, task_id, content: bytes, filename="plan.pdf", content_type="application/pdf"):
    return signed_in.post(f"/tasks/{task_id}/attachments", files={"file": (filename, content, content_type)})


def attachment_rows(client) -> int:
    with app_database(client) as database:
        try:
            return database.execute("select count(*) from attachments").fetchone()[0]
        except Exception as error:  # sqlite3.OperationalError: no such table
            raise CheckFailed(f"The checks count the rows of the table `attachments` in your database: {error}.")


def test_upload_stores_attachment(client):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    content = bytes(range(256)) * 800 + "naïve ✓".encode()  # 200 KiB: more than one read's worth
    # No extension: the type is the one the part says, never guessed from the name.
    response = upload(owner, task["id"], content, filename="launch plan")
    body = expect_status(response, 201, "uploading a 200 KiB file to a task")
    expect_fields(body, ATTACHMENT_PUBLIC, response, "the attachment")
    for key, value in (("task_id", task["id"]), ("filename", "launch plan"), ("content_type", "application/pdf"),
                       ("size", len(content))):
        expect_equal(body.get(key), value, f"the attachment's {key}", response)
    expect_utc(body.get("created_at"), "the attachment's created_at", response)
    download = owner.get(f"/tasks/{task['id']}/attachments/{body['id']}")
    expect_file(download, "downloading the file just uploaded")
    if download.content != content:
        raise CheckFailed(f"The download has {len(download.content)} bytes that differ from the {len(content)} "
                          f"uploaded (first bytes {download.content[:16]!r}): it must give back the file exactly.")
    media = download.headers.get("content-type", "").split(";")[0].strip()
    if media != "application/pdf":
        raise CheckFailed(f"The download's Content-Type is {download.headers.get('content-type')!r}; expected the "
                          "type the file was uploaded with, application/pdf.")
    # A part sent without a Content-Type of its own: the default is application/octet-stream.
    boundary = "grader-boundary"
    raw = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.bin\"\r\n\r\n").encode() \
        + b"\x00\x01binary" + f"\r\n--{boundary}--\r\n".encode()
    response = owner.post(f"/tasks/{task['id']}/attachments", content=raw,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    plain = expect_status(response, 201, "uploading a file sent without a Content-Type of its own")
    expect_equal(plain.get("content_type"), "application/octet-stream", "the content_type of a file sent without one",
                 response)
    expect_equal(plain.get("size"), 8, "the size of an 8-byte file", response)
    response = upload(owner, task["id"], b"", filename="empty.txt", content_type="text/plain")
    empty = expect_status(response, 201, "uploading an empty file (0 bytes is within the limit)")
    expect_equal(empty.get("size"), 0, "the size of an empty file", response)
    download = owner.get(f"/tasks/{task['id']}/attachments/{empty['id']}")
    expect_file(download, "downloading an empty file")
    if download.content != b"":
        raise CheckFailed(f"Downloading an empty file gave {len(download.content)} bytes.")


def test_upload_limit_is_413(client):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    response = upload(owner, task["id"], b"a" * MAX_ATTACHMENT_BYTES, filename="exactly.bin")
    at_limit = expect_status(response, 201, f"a file of exactly {MAX_ATTACHMENT_BYTES} bytes (1 MiB: allowed)")
    expect_equal(at_limit.get("size"), MAX_ATTACHMENT_BYTES, "the size of a 1 MiB file", response)
    before = attachment_rows(client)
    for size in (MAX_ATTACHMENT_BYTES + 1, 3 * MAX_ATTACHMENT_BYTES):
        response = upload(owner, task["id"], b"b" * size, filename="too-big.bin")
        expect_status(response, 413, f"a file of {size} bytes, over the limit of {MAX_ATTACHMENT_BYTES}")
        expect_detail(response, "a file over the limit")
    after = attachment_rows(client)
    if after != before:
        raise CheckFailed(f"The table `attachments` had {before} rows before the two uploads over the limit and "
                          f"{after} after: a refused upload stores nothing.")


def test_attachments_need_membership(client):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    other_task = new_task(owner, project["id"], title="Another task")
    mine = expect_status(upload(owner, task["id"], b"secret plans"), 201, "uploading a file")
    theirs = expect_status(upload(owner, other_task["id"], b"other plans"), 201, "uploading a file to another task")
    stranger = As(client, person(client, "eve"))
    expect_401(client.post(f"/tasks/{task['id']}/attachments", files={"file": ("x.txt", b"x", "text/plain")}),
               "an upload without a token")
    expect_401(client.get(f"/tasks/{task['id']}/attachments/{mine['id']}"), "a download without a token")
    missing = owner.get("/tasks/999999/attachments/1")
    expect_status(missing, 404, "a download from a task that does not exist")
    for response, what in [(upload(stranger, task["id"], b"x"), "an upload to a task of a project they are not in"),
                           (upload(stranger, task["id"], b"x" * (MAX_ATTACHMENT_BYTES + 1)),
                            "an upload over the size limit to a task of a project they are not in"),
                           (stranger.get(f"/tasks/{task['id']}/attachments/{mine['id']}"),
                            "a download from a task of a project they are not in")]:
        expect_status(response, 404, f"{what} (a stranger: the task must look missing)")
        if body_of(response) != body_of(missing):
            raise CheckFailed(f"{what.capitalize()} should be answered exactly as a missing task is "
                              f"({json.dumps(body_of(missing))}), so that ids reveal nothing.\n{exchange(response)}")
    expect_status(owner.get(f"/tasks/{task['id']}/attachments/{theirs['id']}"), 404,
                  "a download of another task's attachment through this task's path")
    expect_status(owner.get(f"/tasks/{task['id']}/attachments/999999"), 404, "a download of an attachment that does "
                  "not exist")
    bob = person(client, "bob")
    add_member(owner, project["id"], bob.id)
    member = As(client, bob)
    expect_status(upload(member, task["id"], b"from bob", filename="bob.txt"), 201, "an upload by a member")
    if expect_file(member.get(f"/tasks/{task['id']}/attachments/{mine['id']}"), "a download by a member") \
            != b"secret plans":
        raise CheckFailed("A member's download did not give back the file's bytes.")


def test_push_and_uploads_count_as_writes(client, outside):
    owner, project = team(client)
    task = new_task(owner, project["id"])
    used, limit = 2, 100  # the project and the task
    first = None
    while used < limit:
        if used % 3 == 0:
            response = upload(owner, task["id"], b"note %d" % used, filename="n.txt", content_type="text/plain")
            stored = expect_status(response, 201, f"write {used + 1} of {limit} (an upload) within 10 seconds")
            first = first or stored
        else:
            response = owner.post(f"/tasks/{task['id']}/push")
            expect_status(response, 200, f"write {used + 1} of {limit} (a push) within 10 seconds")
        used += 1
    for response, what in [(owner.post(f"/tasks/{task['id']}/push"), "a push"),
                           (upload(owner, task["id"], b"late"), "an upload")]:
        expect_status(response, 429, f"{what} after {limit} writes within 10 seconds (pushes and uploads are writes)")
    expect_status(owner.get(f"/tasks/{task['id']}"), 200, "a read after the limit (reads are not limited)")
    expect_file(owner.get(f"/tasks/{task['id']}/attachments/{first['id']}"),
                "a download after the limit (a download is a read, not limited)")

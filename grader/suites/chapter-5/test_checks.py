"""Chapter 5's own checks: settings from the environment, typed, secret, and checked at start-up.

Chapter 4's checks run first, and with them those of Chapters 1 to 3 (`inherit`), on apps
whose settings come from the environment of chapter.toml. The checks below set the
environment themselves: some run a script beside the app that imports the learner's package
under an environment of its own (and, to see start-up fail, starts Python again per case);
the others start a real server with its own environment. A script's report is the learner's
side's word: it can make a check fail, and is quoted as data.
"""

import json
import secrets
import time

import jwt

from checks_chapter_2 import As, add_member, log_in, new_task, person
from checks_chapter_4 import *  # noqa: F401,F403 (the earlier chapters' checks, run first: see `inherit`)
from checks_chapter_4 import push_scene, upload
from grader import harness
from grader.harness import CheckClient, CheckFailed, expect_status, learner_file, quoted, run_in_app, script_report

MARK = "@grader-settings "
OTHER_SMTP_PORT = 2525  # a second SMTP server (`smtp-alt` in chapter.toml's services)
PREFIX = "TRACKER_"
DEV_SECRET_KEY = "change-me-this-is-not-a-secret-0123456789"
# The statement's table: each setting, its default, and what kind of value it is.
DEFAULTS = {
    "environment": "development",
    "database_url": "sqlite:///./tracker.db",
    "secret_key": DEV_SECRET_KEY,
    "access_token_minutes": 30,
    "login_limit": "5 per 10 seconds",
    "write_limit": "100 per 10 seconds",
    "webhook_url": "http://127.0.0.1:9000/hooks/tasks",
    "webhook_timeout": 2.0,
    "smtp_host": "127.0.0.1",
    "smtp_port": 8025,
    "smtp_timeout": 5.0,
    "mail_from": "tracker@example.com",
    "max_attachment_bytes": 1_048_576,
    "sentry_dsn": None,
}
SECRETS = ("secret_key", "sentry_dsn")
NUMBERS = {"access_token_minutes": int, "smtp_port": int, "max_attachment_bytes": int,
           "webhook_timeout": float, "smtp_timeout": float}

# Run beside the app. Its first argument after the folder is a JSON list of steps; each step
# empties the TRACKER_ variables, sets its own, optionally writes `.env` in a new working
# folder, and reports what Settings() and get_settings() give. Every reported value is a
# string, or {"secret": ...} for a value with get_secret_value().
READ_SETTINGS = r'''
import importlib, json, os, sys, tempfile

home, steps, mark = sys.argv[1], json.loads(sys.argv[2]), sys.argv[-1]
sys.path.insert(0, home)
base = os.getcwd()


def shown(value):
    if hasattr(value, "get_secret_value"):
        return {"secret": value.get_secret_value(), "kind": type(value).__name__}
    return {"value": None if value is None else str(value), "kind": type(value).__name__}


reports = []
for step in steps:
    for key in [key for key in os.environ if key.upper().startswith("TRACKER_")]:
        del os.environ[key]
    os.environ.update(step.get("env", {}))
    os.chdir(tempfile.mkdtemp(dir=base))
    if step.get("dotenv") is not None:
        with open(".env", "w") as file:
            file.write(step["dotenv"])
    report = {}
    try:
        config = importlib.import_module("tracker.config")
        settings_class, get_settings = getattr(config, "Settings"), getattr(config, "get_settings")
        from pydantic_settings import BaseSettings
        report["base"] = isinstance(settings_class, type) and issubclass(settings_class, BaseSettings)
        settings = settings_class()
        report["fields"] = {name: shown(getattr(settings, name)) for name in step["fields"] if hasattr(settings, name)}
        if hasattr(get_settings, "cache_clear"):
            get_settings.cache_clear()
        report["cached"] = get_settings() is get_settings()
    except BaseException as error:
        report["error"] = f"{type(error).__name__}: {error}"[:600]
    reports.append(report)
print("\n" + mark + json.dumps(reports), flush=True)
'''


def read_settings(*steps) -> list[dict]:
    for step in steps:
        step.setdefault("fields", list(DEFAULTS))
    reports = script_report(run_in_app(READ_SETTINGS, json.dumps(list(steps)), MARK), MARK,
                            "Reading tracker.config.Settings()", shape=list)
    if len(reports) != len(steps):
        raise CheckFailed("What your app's side reported about its settings could not be read.")
    for step, report in zip(steps, reports):
        if not isinstance(report, dict):
            raise CheckFailed("What your app's side reported about its settings could not be read.")
        if isinstance(report.get("error"), str):
            raise CheckFailed(f"With {describe_env(step)}, reading tracker.config's Settings() and get_settings() "
                              f"raised:\n    {report['error']}")
    return reports


def describe_env(step) -> str:
    parts = [f"{key}={value!r}" for key, value in step.get("env", {}).items()]
    if step.get("dotenv") is not None:
        parts.append(f"a .env file holding {step['dotenv'].strip()!r}")
    return ", ".join(parts) or "no TRACKER_ variable set"


def value_of(report: dict, name: str):
    """A field as the script reported it: the secret's text, or the value's text."""
    field = report.get("fields", {}).get(name)
    if not isinstance(field, dict):
        return "(no such field)"
    return field.get("secret", field.get("value"))


def expect_values(report: dict, expected: dict, step: dict) -> None:
    wrong = [f"    {name}: expected {value!r}, got {value_of(report, name)!r}"
             for name, value in expected.items() if value_of(report, name) != (None if value is None else str(value))]
    if wrong:
        raise CheckFailed(f"With {describe_env(step)}, Settings() has:\n" + "\n".join(wrong))


# --- Task 1: one typed Settings class ---------------------------------------------------------------


def test_settings_class_reads_the_environment():
    given = {"environment": "test", "database_url": "sqlite:///./elsewhere.db", "secret_key": "s" * 40,
             "access_token_minutes": 7, "login_limit": "2 per 10 seconds", "write_limit": "3 per minute",
             "webhook_url": "http://127.0.0.1:9000/other/hook", "webhook_timeout": 0.5,
             "smtp_host": "mail.internal", "smtp_port": 2525, "smtp_timeout": 4.5, "mail_from": "ops@example.org",
             "max_attachment_bytes": 10, "sentry_dsn": "https://key@errors.example.org/1"}
    from_env = {"env": {PREFIX + name.upper(): str(value) for name, value in given.items()}}
    defaults = {"env": {}}
    first, second = read_settings(from_env, defaults)
    if first.get("base") is not True:
        raise CheckFailed("tracker.config.Settings should be a class derived from pydantic_settings.BaseSettings.")
    missing = [name for name in DEFAULTS if name not in first.get("fields", {})]
    if missing:
        raise CheckFailed(f"Settings() has no field {', '.join(missing)}: the statement's table names every field.")
    expect_values(first, given, from_env)
    kinds = first["fields"]
    for name, kind in NUMBERS.items():
        if kinds[name].get("kind") != kind.__name__:
            raise CheckFailed(f"With {PREFIX}{name.upper()}={given[name]!r}, Settings().{name} is a "
                              f"{kinds[name].get('kind')}, not a {kind.__name__}: give the field its type, and "
                              "pydantic converts the environment's text.")
    for name in SECRETS:
        if kinds[name].get("kind") != "SecretStr":
            raise CheckFailed(f"Settings().{name} is a {kinds[name].get('kind')}: a secret is a SecretStr, so that "
                              "printing or logging the settings never shows it.")
    expect_values(second, DEFAULTS, defaults)
    if first.get("cached") is not True:
        raise CheckFailed("get_settings() returned a new object on its second call: decorate it with "
                          "@functools.lru_cache (or cache), so that the environment is read once per process.")


def test_dotenv_is_read_and_the_environment_wins():
    dotenv = ("# a comment\nTRACKER_ACCESS_TOKEN_MINUTES=11\nTRACKER_MAIL_FROM=dotenv@example.org\n"
              "TRACKER_WEBHOOK_TIMEOUT=1.5\nSOMETHING_ELSE=ignored\n")
    only_file = {"env": {}, "dotenv": dotenv}
    both = {"env": {"TRACKER_MAIL_FROM": "env@example.org", "TRACKER_WEBHOOK_TIMEOUT": "0.25"}, "dotenv": dotenv}
    first, second = read_settings(only_file, both)
    expect_values(first, {"access_token_minutes": 11, "mail_from": "dotenv@example.org", "webhook_timeout": 1.5,
                          "smtp_port": 8025}, only_file)
    expect_values(second, {"access_token_minutes": 11, "mail_from": "env@example.org", "webhook_timeout": 0.25},
                  both)


# Run beside the app: for each case, start Python again, import the app's module under that
# case's environment (only the TRACKER_ variables it names), and report its exit status and
# the last of its output.
START_UP = r'''
import json, os, sys, tempfile, traceback

home, cases, module, mark = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[-1]
# The libraries an app imports, imported once here: each case is a child forked from this
# process, which then imports only the learner's package, under its own environment.
for name in ("fastapi", "pydantic", "pydantic_settings", "sqlalchemy", "sqlalchemy.orm", "httpx", "jwt", "limits",
             "pwdlib", "aiosmtplib", "email_validator", "starlette.testclient", "multipart"):
    try:
        __import__(name)
    except ImportError:
        pass
base = {key: value for key, value in os.environ.items() if not key.upper().startswith("TRACKER_")}


def start(case):
    folder = tempfile.mkdtemp(dir=os.getcwd())
    output = os.path.join(folder, "output.txt")
    pid = os.fork()
    if pid == 0:  # the case: its own environment, folder and output; its exit status is the import's
        code = 1
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.clear()
            os.environ.update({**base, **case})
            os.chdir(folder)
            sys.path.insert(0, home)
            __import__(module)
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            if not isinstance(exit.code, int) and exit.code is not None:
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, raw = os.waitpid(pid, 0)
    with open(output, errors="replace") as file:
        said = file.read()
    return {"status": os.waitstatus_to_exitcode(raw), "output": said[-3000:]}


print("\n" + mark + json.dumps([start(case) for case in cases]), flush=True)
'''

GOOD_SECRET = "a-long-enough-secret-for-production-0123456789"
BAD_STARTS = [
    # (environment, the variable the message must name, why)
    ({"TRACKER_ENVIRONMENT": "production"}, "TRACKER_SECRET_KEY", "production without a secret"),
    ({"TRACKER_ENVIRONMENT": "production", "TRACKER_SECRET_KEY": DEV_SECRET_KEY}, "TRACKER_SECRET_KEY",
     "production with the development default as its secret"),
    ({"TRACKER_ENVIRONMENT": "test", "TRACKER_SECRET_KEY": "short-secret-31-bytes-long-0123"}, "TRACKER_SECRET_KEY",
     "a secret of 31 bytes outside development"),
    ({"TRACKER_ENVIRONMENT": "staging", "TRACKER_SECRET_KEY": GOOD_SECRET}, "TRACKER_ENVIRONMENT",
     "an environment that is not development, test or production"),
    ({"TRACKER_ACCESS_TOKEN_MINUTES": "thirty"}, "TRACKER_ACCESS_TOKEN_MINUTES", "token minutes that are not a number"),
    ({"TRACKER_ACCESS_TOKEN_MINUTES": "0"}, "TRACKER_ACCESS_TOKEN_MINUTES", "token minutes of 0"),
    ({"TRACKER_SMTP_PORT": "70000"}, "TRACKER_SMTP_PORT", "an SMTP port above 65535"),
    ({"TRACKER_WEBHOOK_URL": "not a url"}, "TRACKER_WEBHOOK_URL", "a webhook URL that is not an http(s) URL"),
    ({"TRACKER_WEBHOOK_TIMEOUT": "0"}, "TRACKER_WEBHOOK_TIMEOUT", "a webhook timeout of 0 seconds"),
    ({"TRACKER_MAIL_FROM": "nobody"}, "TRACKER_MAIL_FROM", "a sender that is not an e-mail address"),
    ({"TRACKER_WRITE_LIMIT": "lots"}, "TRACKER_WRITE_LIMIT", "a write limit that is not a rate limit"),
    ({"TRACKER_MAX_ATTACHMENT_BYTES": "0"}, "TRACKER_MAX_ATTACHMENT_BYTES", "an attachment limit of 0 bytes"),
]
GOOD_STARTS = [
    ({}, "development with every default"),
    ({"TRACKER_ENVIRONMENT": "production", "TRACKER_SECRET_KEY": GOOD_SECRET}, "production with a good secret"),
    # 20 characters, 40 bytes in UTF-8: the rule counts bytes.
    ({"TRACKER_ENVIRONMENT": "production", "TRACKER_SECRET_KEY": "é" * 20}, "production with a 40-byte secret of "
     "20 two-byte characters"),
]


def start_up(cases: list[dict]) -> list[dict]:
    results = script_report(run_in_app(START_UP, json.dumps(cases), "tracker.main", MARK, timeout=50), MARK,
                            "Starting Python once per environment and importing tracker.main", shape=list)
    if len(results) != len(cases) or not all(isinstance(r, dict) for r in results):
        raise CheckFailed("What your app's side reported about its start-ups could not be read.")
    return results


def test_bad_configuration_stops_startup():
    cases = [env for env, _ in GOOD_STARTS] + [env for env, _, _ in BAD_STARTS]
    results = start_up(cases)
    for (env, why), result in zip(GOOD_STARTS, results):
        if result.get("status") != 0:
            raise CheckFailed(f"Importing tracker.main with {why} ({env or 'no TRACKER_ variable'}) should work, and "
                              f"exited with status {result.get('status')}:\n{quoted(str(result.get('output')))}")
    for (env, name, why), result in zip(BAD_STARTS, results[len(GOOD_STARTS):]):
        output = str(result.get("output"))
        if result.get("status") in (0, None):
            raise CheckFailed(f"Importing tracker.main with {why} ({env}) should stop with an error, before the app "
                              f"serves anyone; it {'worked' if result.get('status') == 0 else 'did not finish'}. Give "
                              "the field a type and limits that refuse this value (or a validator).")
        if name not in output:
            raise CheckFailed(f"Importing tracker.main with {why} ({env}) failed, as it should, but its output does "
                              f"not name the variable {name}, so whoever deploys it must guess which one is wrong. "
                              f"Its last lines:\n{quoted(output, 8)}")


# --- Task 2: secrets stay secret ---------------------------------------------------------------------

# Beside the app: with a secret key and a Sentry DSN of the check's own, import the app with
# every log record and everything printed captured, then look everywhere a secret could
# show: the settings' repr, str and JSON, /openapi.json, and every answer of a short session
# of requests (headers included), among them every GET route without a path parameter.
SECRET_SHOWN = r'''
import contextlib, io, json, logging, os, sys

home, secret, dsn, mark = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[-1]
sys.path.insert(0, home)
for key in [key for key in os.environ if key.upper().startswith("TRACKER_")]:
    del os.environ[key]
os.environ.update(TRACKER_ENVIRONMENT="production", TRACKER_SECRET_KEY=secret, TRACKER_SENTRY_DSN=dsn)
captured = io.StringIO()
handler = logging.StreamHandler(captured)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.DEBUG)
places = {}
try:
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        import importlib
        config = importlib.import_module("tracker.config")
        main = importlib.import_module("tracker.main")
        settings = config.get_settings()
        places["repr(settings)"] = repr(settings)
        places["str(settings)"] = str(settings)
        places["settings.model_dump_json()"] = settings.model_dump_json()
        places["settings.model_dump()"] = repr(settings.model_dump())
        from fastapi.testclient import TestClient
        with TestClient(main.app) as client:
            answers = []
            def keep(response):
                answers.append(json.dumps(dict(response.headers)) + response.text)
                return response
            keep(client.post("/users", json={"email": "ada@example.com", "full_name": "Ada", "password": "correct horse battery"}))
            keep(client.post("/users", json={"email": "ada@example.com", "full_name": "Ada", "password": "correct horse battery"}))
            keep(client.post("/users", json={"email": "not an email", "full_name": "", "password": "x"}))
            token = keep(client.post("/token", data={"username": "ada@example.com", "password": "correct horse battery"})).json()["access_token"]
            keep(client.post("/token", data={"username": "ada@example.com", "password": "wrong"}))
            headers = {"Authorization": "Bearer " + token}
            keep(client.get("/users/me", headers={"Authorization": "Bearer not-a-token"}))
            document = keep(client.get("/openapi.json"))
            places["/openapi.json"] = document.text
            for path, operations in document.json().get("paths", {}).items():
                if "get" in operations and "{" not in path:
                    keep(client.get(path, headers=headers))
            keep(client.get("/docs"))
            places["responses"] = "\n".join(answers)
    places["output and logs"] = captured.getvalue()
    print("\n" + mark + json.dumps({"found": [name for name, text in places.items() if secret in text or dsn in text],
                                   "looked": sorted(places)}), flush=True)
except BaseException as error:
    sys.__stdout__.write("\n" + mark + json.dumps({"error": f"{type(error).__name__}: {error}"[:400]}) + "\n")
'''


def test_secrets_are_never_shown():
    secret = "never-show-" + secrets.token_urlsafe(24)
    dsn = "https://" + secrets.token_hex(16) + "@errors.example.org/42"
    report = script_report(run_in_app(SECRET_SHOWN, secret, dsn, MARK), MARK,
                           "Importing your app with a secret of the check's own and using it")
    if isinstance(report.get("error"), str):
        raise CheckFailed(f"Importing your app in production with a good secret and using it raised: {report['error']}")
    found = report.get("found")
    if not isinstance(found, list) or len(report.get("looked", [])) < 6:
        raise CheckFailed("What your app's side reported about where secrets show could not be read.")
    if found:
        raise CheckFailed(f"The secret key or the Sentry DSN shows in: {', '.join(map(str, found))}. Keep both as "
                          "SecretStr, call get_secret_value() only where the value is used (signing a token), and "
                          "never print, log or return it.")
    # A secret refused at start-up must not be printed either (pydantic shows a refused value
    # as `input_value=...` unless told not to).
    short = "short-" + secrets.token_hex(8)
    result = start_up([{"TRACKER_ENVIRONMENT": "production", "TRACKER_SECRET_KEY": short}])[0]
    if short in str(result.get("output")):
        raise CheckFailed("A secret that was refused at start-up (too short) is printed in the error message: a "
                          "log of a failed deploy must not hold even a bad secret. Leave the input out of the "
                          "message (ValidationError.errors(include_input=False)).\n"
                          f"{quoted(str(result.get('output')), 8)}")


# --- Task 3: settings take effect, and a test can give its own ------------------------------------------


def launch_with(env: dict):
    """A real server with its own environment, the package imported under it."""
    supervisor = harness._supervisor
    app = supervisor.launch(env=env, fresh_import=True)
    supervisor.wait_serving(app)
    return app, CheckClient(app, supervisor)


def claims_of(token: str, key: str, why: str) -> dict:
    try:
        return jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError as error:
        raise CheckFailed(f"The token from POST /token ({why}) does not verify with the TRACKER_SECRET_KEY the app "
                          f"was started with: {error}.") from None


def test_security_settings_take_effect(outside):
    key = "effect-" + secrets.token_urlsafe(32)
    env = {"TRACKER_SECRET_KEY": key, "TRACKER_ACCESS_TOKEN_MINUTES": "7", "TRACKER_LOGIN_LIMIT": "3 per 10 seconds",
           "TRACKER_WRITE_LIMIT": "4 per 10 seconds"}
    app, client = launch_with(env)
    try:
        ada = person(client, "ada")
        claims = claims_of(ada.token, key, "started with TRACKER_SECRET_KEY of the check's own")
        minutes = (claims["exp"] - time.time()) / 60
        if not 6 <= minutes <= 7.5:
            raise CheckFailed(f"With TRACKER_ACCESS_TOKEN_MINUTES=7, the token expires in {minutes:.1f} minutes.")
        for attempt in (2, 3):
            expect_status(log_in(client, ada.email), 200, f"sign-in {attempt} of 3 allowed by TRACKER_LOGIN_LIMIT="
                          "'3 per 10 seconds' (the first was at sign-up)")
        expect_status(log_in(client, ada.email), 429, "a fourth sign-in within 10 seconds, with TRACKER_LOGIN_LIMIT="
                      "'3 per 10 seconds'")
        owner = As(client, ada)
        project = expect_status(owner.post("/projects", json={"name": "Apollo"}), 201, "write 1 of 4")
        for number in (2, 3, 4):
            expect_status(owner.post(f"/projects/{project['id']}/tasks", json={"title": f"Task {number}"}), 201,
                          f"write {number} of 4 allowed by TRACKER_WRITE_LIMIT='4 per 10 seconds'")
        expect_status(owner.post(f"/projects/{project['id']}/tasks", json={"title": "One too many"}), 429,
                      "write 5 within 10 seconds, with TRACKER_WRITE_LIMIT='4 per 10 seconds'")
    finally:
        client.close()
        app.stop()


def test_service_settings_take_effect(outside, other_mail):
    env = {"TRACKER_WEBHOOK_URL": "http://127.0.0.1:9000/elsewhere/events", "TRACKER_WEBHOOK_TIMEOUT": "0.5",
           "TRACKER_MAIL_FROM": "ops@example.org", "TRACKER_MAX_ATTACHMENT_BYTES": "10",
           "TRACKER_SMTP_PORT": str(OTHER_SMTP_PORT)}
    app, client = launch_with(env)
    try:
        owner, task = push_scene(client)
        response = owner.post(f"/tasks/{task['id']}/push")
        expect_status(response, 200, "a push")
        paths = [item.path for item in outside.webhook.events()]
        if paths != ["/elsewhere/events"]:
            raise CheckFailed(f"With TRACKER_WEBHOOK_URL=http://127.0.0.1:9000/elsewhere/events, the push went to "
                              f"{paths}.")
        outside.webhook.behaviour.mode = "hang"
        started = time.monotonic()
        response = owner.post(f"/tasks/{task['id']}/push")
        seconds = time.monotonic() - started
        expect_status(response, 504, "a push while the outside service never answers")
        if seconds > 1.5:
            raise CheckFailed(f"With TRACKER_WEBHOOK_TIMEOUT=0.5, a push to a service that never answers took "
                              f"{seconds:.1f} s to give up.")
        outside.reset()
        bob = person(client, "bob")
        add_member(owner, task["project_id"], bob.id)
        new_task(owner, task["project_id"], title="For bob", assignee_id=bob.id)
        mails = other_mail.wait_for(lambda found: len(found) >= 1, 5)
        if outside.mail.received() or not mails:
            raise CheckFailed(f"With TRACKER_SMTP_PORT={OTHER_SMTP_PORT}, the assignment e-mail should reach the SMTP "
                              f"server on port {OTHER_SMTP_PORT}; {len(outside.mail.received())} reached the one on "
                              f"8025 and {len(mails)} the one on {OTHER_SMTP_PORT}.")
        senders = [(mail.mail_from, str(mail.message.get("From"))) for mail in mails]
        if senders != [("ops@example.org", "ops@example.org")]:
            raise CheckFailed(f"With TRACKER_MAIL_FROM=ops@example.org, the assignment e-mail's sender (envelope, "
                              f"From header) was {senders or 'nothing: no e-mail arrived'}.")
        expect_status(upload(owner, task["id"], b"0123456789"), 201, "a 10-byte file, with "
                      "TRACKER_MAX_ATTACHMENT_BYTES=10")
        expect_status(upload(owner, task["id"], b"0123456789!"), 413, "an 11-byte file, with "
                      "TRACKER_MAX_ATTACHMENT_BYTES=10")
    finally:
        client.close()
        app.stop()


# Beside the app: TRACKER_DATABASE_URL set to a file of the check's choosing; sign up through
# the app, and report which database files exist and what the chosen one holds.
DATABASE_URL = r'''
import json, os, sqlite3, sys, tempfile

home, mark = sys.argv[1], sys.argv[-1]
sys.path.insert(0, home)
os.chdir(tempfile.mkdtemp(dir=os.getcwd()))
os.makedirs("data")
os.environ["TRACKER_DATABASE_URL"] = "sqlite:///./data/chosen.db"
report = {}
try:
    import importlib
    main = importlib.import_module("tracker.main")
    from fastapi.testclient import TestClient
    with TestClient(main.app) as client:
        report["status"] = client.post("/users", json={"email": "ada@example.com", "full_name": "Ada",
                                                       "password": "correct horse battery"}).status_code
    found = []
    for folder, _, files in os.walk("."):
        found += [os.path.join(folder, name) for name in files if name.endswith((".db", ".sqlite", ".sqlite3"))]
    report["files"] = sorted(found)
    if os.path.exists("data/chosen.db"):
        with sqlite3.connect("data/chosen.db") as database:
            report["emails"] = [row[0] for row in database.execute("select email from users")]
except BaseException as error:
    report["error"] = f"{type(error).__name__}: {error}"[:400]
print("\n" + mark + json.dumps(report), flush=True)
'''


def test_database_url_takes_effect():
    report = script_report(run_in_app(DATABASE_URL, MARK), MARK, "Importing your app with TRACKER_DATABASE_URL set")
    if isinstance(report.get("error"), str):
        raise CheckFailed(f"Importing your app with TRACKER_DATABASE_URL=sqlite:///./data/chosen.db and signing up "
                          f"raised: {report['error']}")
    if report.get("status") != 201:
        raise CheckFailed(f"Signing up with TRACKER_DATABASE_URL=sqlite:///./data/chosen.db answered "
                          f"{report.get('status')}.")
    if report.get("emails") != ["ada@example.com"] or report.get("files") != ["./data/chosen.db"]:
        raise CheckFailed("With TRACKER_DATABASE_URL=sqlite:///./data/chosen.db, the user signed up should be stored "
                          "in data/chosen.db, and no other database file made; the database files were "
                          f"{report.get('files')}, and data/chosen.db holds {report.get('emails', 'nothing')}.")


# Beside the app: two apps from create_app(), one with Settings of the check's own, and the
# module's app; sign in on each and report the tokens' lifetimes and keys, and whether a
# second sign-in is limited.
OWN_SETTINGS = r'''
import json, os, sys, tempfile, time

home, key, mark = sys.argv[1], sys.argv[2], sys.argv[-1]
sys.path.insert(0, home)
os.chdir(tempfile.mkdtemp(dir=os.getcwd()))
report = {}
try:
    import importlib
    import jwt
    config = importlib.import_module("tracker.config")
    main = importlib.import_module("tracker.main")
    from fastapi.testclient import TestClient
    own = config.Settings(environment="test", secret_key=key, access_token_minutes=3, login_limit="2 per minute")
    user = {"email": "ada@example.com", "full_name": "Ada", "password": "correct horse battery"}
    form = {"username": user["email"], "password": user["password"]}

    def session(app, label):
        with TestClient(app) as client:
            client.post("/users", json=user)
            answers = [client.post("/token", data=form) for _ in range(3)]
        token = answers[0].json().get("access_token", "") if answers[0].status_code == 200 else ""
        header = {}
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header["minutes"] = round((unverified["exp"] - time.time()) / 60, 2)
            jwt.decode(token, key, algorithms=["HS256"])
            header["own_key"] = True
        except Exception:
            header.setdefault("own_key", False)
        report[label] = {"statuses": [answer.status_code for answer in answers], **header}

    session(main.create_app(own), "own")
    session(main.app, "module")
    session(main.create_app(), "default")
except BaseException as error:
    report["error"] = f"{type(error).__name__}: {error}"[:400]
print("\n" + mark + json.dumps(report), flush=True)
'''


def test_create_app_takes_settings():
    key = "own-" + secrets.token_urlsafe(32)
    report = script_report(run_in_app(OWN_SETTINGS, key, MARK, timeout=35), MARK,
                           "Building apps with create_app(Settings(...))")
    if isinstance(report.get("error"), str):
        raise CheckFailed(f"Building an app with create_app(Settings(environment='test', secret_key=..., "
                          f"access_token_minutes=3, login_limit='2 per minute')) and signing in raised: {report['error']}")
    own, module, default = (report.get(name) or {} for name in ("own", "module", "default"))
    if own.get("statuses") != [200, 200, 429] or own.get("own_key") is not True or not 2 <= own.get("minutes", 0) <= 3.5:
        raise CheckFailed("An app from create_app(Settings(secret_key=KEY, access_token_minutes=3, login_limit="
                          "'2 per minute', environment='test')) should sign its tokens with KEY, make them last 3 "
                          "minutes and refuse a third sign-in within a minute. Three sign-ins answered "
                          f"{own.get('statuses')}, and the first token {'was' if own.get('own_key') else 'was not'} "
                          f"signed with KEY and lasts {own.get('minutes', '?')} minutes.")
    for name, found in (("tracker.main's app", module), ("create_app() with no argument", default)):
        if found.get("statuses") != [200, 200, 200] or found.get("own_key") is not False \
                or not 29 <= found.get("minutes", 0) <= 30.5:
            raise CheckFailed(f"{name.capitalize()} should keep the environment's settings after another app was "
                              "built with settings of its own: tokens of 30 minutes, signed with the environment's "
                              f"key, and 5 sign-ins per 10 seconds. Three sign-ins answered {found.get('statuses')}, "
                              f"and the token {'was' if found.get('own_key') else 'was not'} signed with the other "
                              f"app's key and lasts {found.get('minutes', '?')} minutes.")


# --- Task 4: .env.example -----------------------------------------------------------------------------


def test_env_example_lists_every_setting():
    text = learner_file(".env.example")
    if text is None:
        raise CheckFailed("There is no .env.example beside tracker/: commit one that lists every setting, so that a "
                          "new developer (or a deployment) knows what can be set.")
    lines = {}
    for line in text.decode(errors="replace").splitlines():
        stripped = line.strip().lstrip("#").strip()
        name, equals, value = stripped.partition("=")
        if equals and name.strip().upper().startswith(PREFIX) and " " not in name.strip():
            lines.setdefault(name.strip(), value.strip())
    missing = [PREFIX + name.upper() for name in DEFAULTS if PREFIX + name.upper() not in lines]
    if missing:
        raise CheckFailed(f".env.example does not list {', '.join(missing)}: write each setting as a line "
                          "`TRACKER_NAME=value` (or `# TRACKER_NAME=value`).")
    for name in SECRETS:
        value = lines[PREFIX + name.upper()]
        if value:
            raise CheckFailed(f".env.example gives {PREFIX}{name.upper()} the value {value[:12]!r}...: a committed file "
                              "holds no secret, not even an example one (leave the value empty).")
    ignored = learner_file(".gitignore")
    patterns = [line.strip() for line in (ignored or b"").decode(errors="replace").splitlines()]
    if not any(pattern in (".env", "/.env") for pattern in patterns):  # `.env*` would hide .env.example too
        raise CheckFailed("The .gitignore beside tracker/ does not list .env: a developer's own settings (and "
                          "secrets) must never be committed.")

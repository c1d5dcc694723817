"""What the later chapters need from the grader, each shown once with a small app of its own.

Chapter 4 needs a real server; Chapter 5 an environment per app process and an app that must
refuse to start; Chapter 6 the app's log lines and its error-tracking events; Chapter 7 the
learner's own tests run against an app. All of it is observed from outside the app's process.
"""

import gzip
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from grader.catalogue import Chapter
from grader.runner import Scratch
from grader.sandbox import detect
from grader.supervisor import Limits, Supervisor

APP = '''
import json, logging, os, sys
from fastapi import FastAPI

SETTING = os.environ.get("TRACKER_SECRET_KEY")
if os.environ.get("TRACKER_STRICT") and not SETTING:
    print("TRACKER_SECRET_KEY is missing", file=sys.stderr)
    sys.exit(2)

app = FastAPI()


@app.get("/setting")
def setting():
    print(json.dumps({"event": "setting read", "level": "info"}), flush=True)
    return {"secret_set": SETTING is not None}


@app.get("/report")
def report():
    import sentry_sdk

    sentry_sdk.init(dsn="http://public@127.0.0.1:9123/1", default_integrations=False)
    sentry_sdk.capture_message("something to track")
    sentry_sdk.flush(timeout=5)
    return {"sent": True}
'''

LEARNER_TESTS = '''
import os, pytest

def test_passes():
    assert os.environ["WHICH_APP"] == "reference"
'''


@pytest.fixture
def supervisor(tmp_path):
    folder = tmp_path / "learner"
    (folder / "service").mkdir(parents=True)
    (folder / "service" / "__init__.py").write_text("")
    (folder / "service" / "main.py").write_text(APP)
    (folder / "test_mine.py").write_text(LEARNER_TESTS)
    chapter = Chapter(0, "capabilities", "service", "service.main", tmp_path, (), names={"app": "app"})
    scratch = Scratch()
    scratch.copy_learner(folder)
    running = Supervisor(chapter, scratch.area, scratch.private, Limits(), detect())
    yield running
    running.close()
    scratch.remove()


def client_for(supervisor, app):
    from grader.harness import CheckClient

    return CheckClient(app, supervisor)


def test_a_real_server_with_its_own_environment_and_log_lines(supervisor):
    app = supervisor.launch(env={"TRACKER_SECRET_KEY": "s3cret"}, fresh_import=True)
    supervisor.wait_serving(app)
    with client_for(supervisor, app) as client:
        response = client.get("/setting")
    assert response.json() == {"secret_set": True}
    assert response.headers["server"] == "uvicorn"  # a real server, not an in-process client
    lines = [json.loads(line) for line in app.output.text().splitlines() if line.startswith("{")]
    assert {"event": "setting read", "level": "info"} in lines
    app.stop()
    other = supervisor.launch(fresh_import=True)  # the next process does not inherit the environment
    supervisor.wait_serving(other)
    with client_for(supervisor, other) as client:
        assert client.get("/setting").json() == {"secret_set": False}
    other.stop()


def test_an_app_that_must_refuse_to_start(supervisor):
    app = supervisor.launch(env={"TRACKER_STRICT": "1"}, fresh_import=True)
    assert app.wait_exit(timeout=10) == 3  # the host's status for "could not be imported"
    reported = app.events.wait_for(lambda event: event["event"] == "load-error", 1)
    assert "sys.exit(2)" in reported["message"]
    assert "TRACKER_SECRET_KEY is missing" in app.output.text()


def test_error_tracking_events_reach_a_collector_the_checker_runs(supervisor, tmp_path):
    received = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    path = supervisor.service_socket("sentry")
    server = socketserver.UnixStreamServer(str(path), Collector)
    server.get_request = lambda: (server.socket.accept()[0], ("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = supervisor.launch(forward={9123: path}, fresh_import=True)
        supervisor.wait_serving(app)
        with client_for(supervisor, app) as client:
            assert client.get("/report").json() == {"sent": True}
        app.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert received and received[0][0] == "/api/1/envelope/"
    body = received[0][1]
    assert b"something to track" in (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)


def test_the_learners_own_tests_run_against_an_app(supervisor):
    import sys

    src = supervisor.area / "src"
    passing = supervisor.launch(env={"WHICH_APP": "reference"},
                                command=[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(src)])
    assert passing.wait_exit(timeout=60) == 0, passing.output.text()
    failing = supervisor.launch(env={"WHICH_APP": "bugged"},
                                command=[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(src)])
    assert failing.wait_exit(timeout=60) == 1
    assert "1 failed" in failing.output.text()


def test_the_database_can_be_taken_away(tmp_path):
    """Chapter 6's /health check: the app's SQLite file is in the run's folder, so a check can
    remove it (or make it unreadable) while the app runs."""
    from grader.harness import AppCrashed

    from .conftest import CHAPTER, SOLUTION

    scratch = Scratch()
    scratch.copy_learner(SOLUTION)
    running = Supervisor(CHAPTER, scratch.area, scratch.private, Limits(), detect())
    try:
        running.load()
        with running.app_for_check() as client:
            assert client.post("/users", json={"email": "a@example.com", "full_name": "A",
                                               "password": "long enough"}).status_code == 201
            database = client.app.database
            assert database is not None and database.is_relative_to(scratch.area)
            database.write_bytes(b"this is no longer a database" * 200)
            with pytest.raises(AppCrashed, match="DatabaseError"):
                client.get("/users")
    finally:
        running.close()
        scratch.remove()

"""What the hidden checks are written with.

A check gets its own fresh app process through `app_for_check()` and talks to it over HTTP
with `CheckClient`, as the app's clients would. A hang or a crash in the app becomes
`AppHung` or `AppCrashed`, with the learner's file and line where the app reported them.
Expectations (`expect_status`, `expect_rejected`, ...) raise `CheckFailed`, whose text is
shown to the learner as it is: the request that was sent, what was expected and what came
back. The check's own source is never shown.

This module runs only on the trusted side: it never imports the learner's code.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

BODY_LIMIT = 700
RESPONSE_LIMIT = 4 * 1024**2  # bytes of a response body that a check reads; the rest is a failure


class CheckFailed(AssertionError):
    """An expectation was not met. Its text is meant for the learner."""


class SetupProblem(Exception):
    """The learner's code lacks something every check needs (a name the task keeps)."""


class AppProblem(Exception):
    """The app hung or crashed while a check talked to it. Reported as that, without the
    check's hint, which is about something else."""

    status = "error"


class AppHung(AppProblem):
    status = "timeout"


class AppCrashed(AppProblem):
    status = "error"


class Blocked(AppProblem):
    """A check could not set its scene, because a route that another check covers is broken.
    Reported once as that other check's failure, and here as blocked by it."""

    status = "not-run"

    def __init__(self, route: str, covered_by: str, what: str) -> None:
        super().__init__(f"Blocked by {covered_by}: this check needs {route}, which failed while {what}\n"
                         f"Fix {covered_by} first; this check runs properly after that.")
        self.covered_by = covered_by


class RunStopped(AppProblem):
    """The whole run went over its limit, or was interrupted: the check did not run."""

    status = "not-run"


def _short(text: str, limit: int = BODY_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit} more characters)"


def _as_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def describe_request(method: str, url: str, body: Any = None) -> str:
    line = f"{method.upper()} {url}"
    if body is not None:
        line += f" with body {_short(_as_json_text(body), 400)}"
    return line


def describe_response(response: httpx.Response) -> str:
    """Status and body; for a body that is not JSON, its content type too (the usual culprit)."""
    media = response.headers.get("content-type", "none")
    if response.content and not media.startswith(("text/", "application/json", "application/problem+json")):
        try:
            text = _as_json_text(response.json())
        except (ValueError, RecursionError, UnicodeDecodeError):  # a file: its size and first bytes
            return (f"{response.status_code} [content-type: {media}] {len(response.content)} bytes: "
                    f"{response.content[:48]!r}{' ...' if len(response.content) > 48 else ''}")
        return f"{response.status_code} {_short(text)}"
    text = response.text
    kind = ""
    try:
        text = _as_json_text(response.json())
    except (ValueError, RecursionError):
        kind = f"[content-type: {media}] "
    return f"{response.status_code} {kind}{_short(text) if text else '(empty body)'}"


def _request_label(response: httpx.Response) -> str:
    request = response.request
    url = request.url.raw_path.decode()
    body = None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        size = request.headers.get("content-length")
        return describe_request(request.method, url) + f" with a multipart form (a file upload{f', {size} bytes' if size else ''})"
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = b""
    if content:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = content.decode(errors="replace")
    return describe_request(request.method, url, body)


def exchange(response: httpx.Response) -> str:
    """The request and the response, as a learner would want to see them."""
    return f"  sent: {_request_label(response)}\n  got:  {describe_response(response)}"


def _target(url: Any, query: Any) -> str:
    return str(url) + (f"?{httpx.QueryParams(query)}" if query else "")


class CheckClient(httpx.Client):
    """An HTTP client for one check's app process, on the Unix socket the checker made.

    Requests go one at a time and are numbered in order, as the app's reporting wrapper numbers
    them on arrival, so that a crash the app reports can be matched to its request; its time limit is kept by the supervisor's watchdog, which kills the app
    (not the request) when it passes, so no trickle of bytes can stretch it.
    """

    def __init__(self, app: Any, supervisor: Any) -> None:
        # Plain HTTP on a Unix socket: no TLS context to build, no proxy settings to read.
        super().__init__(transport=httpx.HTTPTransport(uds=app.sock_path, verify=False), verify=False,
                         trust_env=False, base_url="http://tracker",
                         timeout=httpx.Timeout(supervisor.limits.request + 5))
        self.app, self.supervisor = app, supervisor
        self.sent = 0

    @property
    def database(self) -> Path | None:
        """This app's SQLite file, in the run's own folder: a check may read or change it,
        through `app_database`, never by opening the path (the app could have swapped it)."""
        return self.app.database

    def open_database(self) -> int:
        return self.supervisor.open_database(self.app)

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        target = _target(url, kwargs.get("params"))
        label = f"{method.upper()} {target}"
        shown = describe_request(method, target, kwargs.get("json"))
        self.supervisor.before_request(self.app, label)
        self.sent += 1
        try:
            with self.supervisor.request_deadline(self.app, label):
                with self.stream(method, url, **kwargs) as response:
                    content = bytearray()
                    for chunk in response.iter_bytes():
                        content += chunk
                        if len(content) > RESPONSE_LIMIT:
                            raise CheckFailed(f"The response to {label} is larger than {RESPONSE_LIMIT >> 20} MiB; "
                                              f"the checks stop reading there.\n  sent: {shown}")
                    response._content = bytes(content)
        except httpx.TransportError:
            raise self.supervisor.explain_lost(self.app, label, shown) from None
        if response.status_code == 500:  # what an exception the app did not handle becomes
            crash = self.supervisor.crash_report(self.app, str(self.sent))
            if crash is not None:
                raise AppCrashed(crash + f"\n  sent: {shown}")
        return response


@contextmanager
def app_database(client: Any) -> Iterator[sqlite3.Connection]:
    """A connection to the app's SQLite database, for a check that must read or change rows.

    The file is opened by this process without following links (the app could replace its
    database with a link to any file this process may write) and handed to SQLite as that open
    file, with the journal kept in memory so that nothing is created beside it.
    """
    if getattr(client, "database", None) is None:
        raise CheckFailed("This check needs your app's SQLite database, and found none: keep the starter's "
                          "SQLite file database (`sqlite:///...`), not an in-memory one.")
    opener = getattr(client, "open_database", None)
    fd = opener() if opener else os.open(client.database, os.O_RDWR | os.O_NOFOLLOW)
    try:
        connection = sqlite3.connect(f"file:/proc/self/fd/{fd}?mode=rw", uri=True, timeout=5)
        try:
            connection.execute("pragma journal_mode = memory")
            yield connection
            connection.commit()
        finally:
            connection.close()
    finally:
        os.close(fd)


def app_for_check(suite_dir: Path) -> Any:
    """The context manager that gives a check its own app process and a client for it.

    Under `grader check` the supervisor of the run provides it. Under bare pytest (for
    authoring checks, and for the benchmark that compares the two) the learner's app is
    imported into this process instead and driven through a TestClient: never do that with
    code you do not trust.
    """
    if _supervisor is not None:
        return _supervisor.app_for_check()
    from grader.inprocess import in_process_app

    return in_process_app(suite_dir)


_supervisor: Any = None

class Ran:
    """A process run beside the app (`run_in_app`): its exit status (None if it was stopped at
    its time limit) and its output. Both are the learner's side's word: a check may fail on
    them and quote them, as data."""

    def __init__(self, status: int | None, output: str) -> None:
        self.status, self.output = status, output


def _learner_dir() -> Path:
    """Under bare pytest, the learner's folder: GRADER_LEARNER_DIR, or the check is skipped."""
    import pytest

    folder = os.environ.get("GRADER_LEARNER_DIR")
    if not folder:
        pytest.skip("this check reads the learner's folder: set GRADER_LEARNER_DIR under bare pytest")
    return Path(folder).resolve()


def run_in_app(script: str, *args: str, timeout: float | None = None) -> Ran:
    """Run a Python script where the learner's code runs, and return its status and output.

    Under `grader check` it runs inside the app's sandbox, in a folder of its own, as
    `python -I` (no environment variables, user site or working folder on the path: the
    learner's code comes in only where the script imports it). It gets the learner's folder
    (the run's copy) as sys.argv[1], then `args`. Under bare pytest it is a subprocess.
    """
    import subprocess
    import sys

    # Most of the check's own time limit: importing an app takes seconds on a busy machine.
    limit = timeout or (max(_supervisor.limits.check - 5, _supervisor.limits.startup) if _supervisor is not None else 15.0)
    if _supervisor is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="grader-beside-") as folder:
            try:
                done = subprocess.run([sys.executable, "-I", "-c", script, str(_learner_dir()), *args], cwd=folder,
                                      capture_output=True, text=True, errors="replace", timeout=limit)
            except subprocess.TimeoutExpired as expired:
                said = expired.stdout or b""  # bytes, whatever `text` says
                return Ran(None, said.decode(errors="replace") if isinstance(said, bytes) else said)
        return Ran(done.returncode, done.stdout + done.stderr)
    process = _supervisor.launch(command=[sys.executable, "-I", "-c", script, str(_supervisor.area / "src"), *args])
    status = process.wait_exit(timeout=limit)
    process.output.closed.wait(1.0)
    return Ran(status, process.output.text())


SCRIPT_MARK = "@grader-"  # every line a script beside the app reports on starts with its own @grader-... mark
QUOTED_LINES = 14  # lines of the learner's side quoted in a failure


def quoted(text: str, lines: int = QUOTED_LINES) -> str:
    """Output of the learner's side, indented: its last `lines` lines, without the scripts' reports."""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith(SCRIPT_MARK)][-lines:]
    return "\n".join("    | " + line[:200] for line in kept) or "    (no output)"


def script_report(ran: Ran, mark: str, what: str, shape: type = dict) -> Any:
    """What a script beside the app reported: the JSON on its last line that starts with `mark`,
    of type `shape`. A script that was stopped at its time limit, or printed no such report,
    fails the check with `what` ("Importing tracker.main", ...) and the end of its output."""
    if ran.status is None:
        raise CheckFailed(f"{what} beside your app did not finish in time.\n{quoted(ran.output)}")
    found = [line for line in ran.output.splitlines() if line.startswith(mark)]
    try:
        report = json.loads(found[-1][len(mark):]) if found else None
    except (ValueError, RecursionError):
        report = None
    if not isinstance(report, shape):
        raise CheckFailed(f"{what} beside your app failed (exit status {ran.status}):\n{quoted(ran.output)}")
    return report


_VALUE_MARK = "@grader-value "
_READ_VALUE = (
    "import importlib, json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "value = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])\n"
    "print('\\n' + sys.argv[4] + json.dumps(value, default=str), flush=True)\n"
)


def app_value(where: str, app_module: str) -> Any:
    """The value (as JSON) of a name in the learner's code, `module:name` or a plain name in
    `app_module`, read by a script beside the app. It is the learner's word, not a fact: a
    check that relies on it must first show that the app behaves as that value says."""
    module, _, name = where.rpartition(":")
    module = module or app_module
    shown = f"{name} in {module.replace('.', '/')}.py"
    ran = run_in_app(_READ_VALUE, module, name, _VALUE_MARK)
    lines = [line for line in ran.output.splitlines() if line.startswith(_VALUE_MARK)]
    if ran.status != 0 or not lines:
        said = "\n".join(ran.output.splitlines()[-6:])
        raise CheckFailed(f"This check reads {shown}, and could not (exit status {ran.status}). Keep that name "
                          f"there.\n{_short(said)}")
    try:
        return json.loads(lines[-1][len(_VALUE_MARK):])
    except ValueError:
        raise CheckFailed(f"This check reads {shown}, and could not make sense of it.") from None


def learner_file(relative: str, limit: int = 1 << 20) -> bytes | None:
    """A file of the learner's folder (under `grader check`, the run's copy), read as data, at
    most `limit` bytes; None if it is missing or not a regular file. No link is followed on the
    way: the app may have replaced any part of the path with one."""
    import stat

    if _supervisor is None:
        base, parts = _learner_dir(), relative.split("/")
    else:
        base, parts = _supervisor.area, ["src", *relative.split("/")]
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(file).st_mode):
            return None
        content = bytearray()
        while len(content) < limit and (chunk := os.read(file, min(65536, limit - len(content)))):
            content += chunk
        return bytes(content)
    finally:
        os.close(file)


def install(supervisor: Any) -> None:
    global _supervisor
    _supervisor = supervisor


# --- Expectations ------------------------------------------------------------------------


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):
        raise CheckFailed(f"Expected a JSON body.\n{exchange(response)}") from None


def expect_status(response: httpx.Response, expected: int | Iterable[int], why: str = "") -> Any:
    """Fail unless the status is `expected`; return the JSON body (or None if there is none)."""
    allowed = {expected} if isinstance(expected, int) else set(expected)
    if response.status_code not in allowed:
        wanted = " or ".join(str(code) for code in sorted(allowed))
        reason = f" ({why})" if why else ""
        raise CheckFailed(f"Expected status {wanted}{reason}, got {response.status_code}.\n{exchange(response)}")
    return body_of(response) if response.content else None


def expect_fields(body: Any, exactly: Iterable[str], response: httpx.Response, what: str) -> None:
    """Fail unless `body` is an object with exactly these keys."""
    wanted = set(exactly)
    if not isinstance(body, dict):
        raise CheckFailed(f"Expected {what} to be a JSON object.\n{exchange(response)}")
    missing, extra = sorted(wanted - body.keys()), sorted(body.keys() - wanted)
    if missing or extra:
        parts = [f"Expected {what} to have exactly the fields {sorted(wanted)}."]
        if extra:
            parts.append(f"These should not be there: {extra}.")
        if missing:
            parts.append(f"These are missing: {missing}.")
        raise CheckFailed(" ".join(parts) + f"\n{exchange(response)}")


def expect_equal(actual: Any, expected: Any, what: str, response: httpx.Response) -> None:
    if actual == expected:
        return
    if isinstance(actual, dict) and isinstance(expected, dict):
        lines = [
            f"    {key}: expected {_as_json_text(expected.get(key))}, got {_as_json_text(actual.get(key))}"
            for key in expected
            if actual.get(key) != expected.get(key)
        ]
        raise CheckFailed(f"Unexpected values in {what}:\n" + "\n".join(lines) + f"\n{exchange(response)}")
    raise CheckFailed(
        f"Expected {what} to be {_as_json_text(expected)}, got {_as_json_text(actual)}.\n{exchange(response)}"
    )


def error_locations(body: Any) -> list[tuple[Any, ...]]:
    """The `loc` of every entry in a FastAPI 422 body, as tuples."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list):
        return []
    return [tuple(item.get("loc", ())) for item in body["detail"] if isinstance(item, dict)]


def expect_rejected(response: httpx.Response, loc: tuple[str, ...], why: str) -> None:
    """Fail unless the app answered 422 with a validation error at `loc`."""
    where = " → ".join(loc)
    if response.status_code != 422:
        raise CheckFailed(
            f"Expected 422 with a validation error at {where} ({why}), got {response.status_code}.\n"
            f"{exchange(response)}"
        )
    found = error_locations(body_of(response))
    if not any(found_loc[: len(loc)] == loc for found_loc in found):
        shown = ", ".join(" → ".join(map(str, item)) for item in found) or "none"
        raise CheckFailed(
            f"Expected the 422 body's detail to list an error at {where} ({why}); "
            f"errors found at: {shown}.\n{exchange(response)}"
        )

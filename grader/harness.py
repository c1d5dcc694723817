"""What the hidden checks are written with.

A check talks to the learner's app through `CheckClient`, which remembers every exchange and
turns a crash inside the learner's code into a readable account of it. Expectations
(`expect_status`, `expect_rejected`, ...) raise `CheckFailed`, whose text is shown to the
learner as it is: the request that was sent, what was expected and what came back. The
check's own source is never shown.

This module has no grader-only dependencies, so the hidden suites also run under bare pytest.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

#: Called with a label such as "GET /tasks/1" just before each request is sent; the
#: grader's worker listens here so that a hung request can be named.
request_listeners: list[Callable[[str], None]] = []

BODY_LIMIT = 700


class CheckFailed(AssertionError):
    """An expectation was not met. Its text is meant for the learner."""


class SetupProblem(Exception):
    """The learner's code lacks something every check needs (a name the task keeps)."""


def learner_dir() -> Path | None:
    value = os.environ.get("GRADER_LEARNER_DIR")
    return Path(value).resolve() if value else None


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
    text = response.text
    kind = ""
    try:
        text = _as_json_text(response.json())
    except ValueError:
        kind = f"[content-type: {response.headers.get('content-type', 'none')}] "
    return f"{response.status_code} {kind}{_short(text) if text else '(empty body)'}"


def _request_label(response: httpx.Response) -> str:
    request = response.request
    url = request.url.raw_path.decode()
    body = None
    if request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = request.content.decode(errors="replace")
    return describe_request(request.method, url, body)


def exchange(response: httpx.Response) -> str:
    """The request and the response, as a learner would want to see them."""
    return f"  sent: {_request_label(response)}\n  got:  {describe_response(response)}"


def learner_frames(exc: BaseException) -> list[str]:
    """The traceback lines that point into the learner's own files, innermost last."""
    home = learner_dir()
    lines = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if home is not None and path.is_absolute() and home in path.resolve().parents:
            shown = path.resolve().relative_to(home)
            lines.append(f"    {shown}, line {frame.lineno}, in {frame.name}: {(frame.line or '').strip()}")
    return lines


def describe_crash(label: str, exc: BaseException) -> str:
    if isinstance(exc, AppExited):
        exc = exc.original
    if isinstance(exc, SystemExit):
        what = f"it called sys.exit({exc.code!r})"
    else:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        what = f"{type(exc).__name__}: {_short(first_line, 300)}"
    frames = learner_frames(exc)
    where = "\n  where (innermost last):\n" + "\n".join(frames[-6:]) if frames else ""
    return f"Your app crashed instead of answering: {what}\n  sent: {label}{where}"


class AppExited(Exception):
    """The app raised SystemExit or KeyboardInterrupt; carried as an ordinary exception."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _ExitGuard:
    """ASGI wrapper: a SystemExit inside a handler would otherwise tear down the TestClient's
    event loop and surface as a bare CancelledError with no trace of its cause."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except (SystemExit, KeyboardInterrupt) as exc:
            raise AppExited(exc) from exc


class CheckClient(TestClient):
    """A TestClient that names each request to the grader and explains crashes."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(_ExitGuard(app), raise_server_exceptions=True, **kwargs)

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        query = kwargs.get("params")
        target = str(url) + (f"?{httpx.QueryParams(query)}" if query else "")
        label = describe_request(method, target, kwargs.get("json"))
        for listener in request_listeners:
            listener(f"{method.upper()} {target}")
        try:
            return super().request(method, url, **kwargs)
        except CheckFailed:
            raise
        except (Exception, SystemExit) as exc:
            raise CheckFailed(describe_crash(label, exc)) from None


# --- Expectations ------------------------------------------------------------------------


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
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


def require(module: Any, name: str, purpose: str) -> Any:
    """Fetch a name the exercise asks the learner to keep, or explain what is missing."""
    try:
        return getattr(module, name)
    except AttributeError:
        raise SetupProblem(
            f"{module.__name__} has no `{name}` ({purpose}). Keep this name from the starter code."
        ) from None

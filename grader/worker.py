"""The worker: the only process that runs a learner's code.

It is started by `grader.runner` with a JSON spec as its argument and an inherited pipe for
events. It caps its own resources, imports the learner's app (so that an import problem is
reported once, clearly, instead of once per check), then runs the requested checks with
pytest and reports each one as it starts and ends. The runner owns the clock: if this
process hangs or dies, the runner kills it and starts another for the remaining checks.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest  # imported before the learner's folder joins sys.path, so it cannot be shadowed

from grader.guards import block_network, cap_resources, changed_since, snapshot

class Channel:
    """Newline-delimited JSON events on the pipe the runner gave us."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}) + "\n"
        data = line.encode()
        while data:
            written = os.write(self._fd, data)
            data = data[written:]


def _relative(path: str, home: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(home))
    except ValueError:
        return path


def describe_load_failure(exc: BaseException, module: str, home: Path) -> str:
    """One readable paragraph on why the learner's module could not be imported."""
    from grader.harness import learner_frames

    if isinstance(exc, SyntaxError):
        where = f"{_relative(exc.filename or '?', home)}, line {exc.lineno}"
        text = (exc.text or "").rstrip("\n")
        caret = ""
        if text and exc.offset:
            stripped = text.lstrip()
            caret = "\n      " + " " * max(exc.offset - 1 - (len(text) - len(stripped)), 0) + "^"
            text = stripped
        shown = f"\n      {text}{caret}" if text else ""
        return f"{type(exc).__name__} in {where}: {exc.msg}{shown}"
    frames = learner_frames(exc)
    where = ("\n  where (innermost last):\n" + "\n".join(frames[-6:])) if frames else ""
    if isinstance(exc, SystemExit):
        return f"Your code called sys.exit({exc.code!r}) while {module} was being imported.{where}"
    if isinstance(exc, KeyboardInterrupt):
        return f"Importing {module} was interrupted (KeyboardInterrupt).{where}"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"Importing {module} raised {type(exc).__name__}: {first_line}{where}"


def load_app(spec: dict[str, Any], channel: Channel) -> bool:
    home = Path(spec["learner_dir"]).resolve()
    module = spec["app_module"]
    sys.path.append(str(home))
    channel.send("loading", module=module)
    started = time.perf_counter()
    try:
        loaded = importlib.import_module(module)
    except BaseException as exc:  # the learner's code may raise anything, SystemExit included
        channel.send("load-error", message=describe_load_failure(exc, module, home))
        return False
    origin = Path(loaded.__file__ or "").resolve()
    if home not in origin.parents:
        channel.send(
            "load-error",
            message=f"{module} was imported from {origin}, not from {home}. "
            f"Another package named {spec['package']!r} is installed; uninstall it or rename it.",
        )
        return False
    channel.send("loaded", seconds=round(time.perf_counter() - started, 3))
    return True


class EventPlugin:
    """A pytest plugin that reports each check's start and outcome to the runner."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.guarded: dict[str, int] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}

    def pytest_collection_finish(self, session: Any) -> None:
        # pytest itself rebinds a few members while it configures (legacy path properties),
        # so the baseline for the checks is taken once it is ready, before any check runs.
        self.guarded = snapshot()

    @staticmethod
    def _name(nodeid: str) -> str:
        return nodeid.rsplit("::", 1)[-1].removeprefix("test_").replace("_", "-")

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.outcomes[nodeid] = {"status": "passed", "message": "", "duration": 0.0}
        self.channel.send("start", check=self._name(nodeid))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
        if call.excinfo is None:
            return
        outcome = self.outcomes.setdefault(item.nodeid, {"status": "passed", "message": "", "duration": 0.0})
        if outcome["status"] != "passed":
            return
        outcome["status"], outcome["message"] = classify(call.excinfo.value, call.when)

    def pytest_runtest_logreport(self, report: Any) -> None:
        outcome = self.outcomes.setdefault(report.nodeid, {"status": "passed", "message": "", "duration": 0.0})
        outcome["duration"] += report.duration
        if report.failed and outcome["status"] == "passed":
            outcome["status"], outcome["message"] = "error", f"The check could not run: {report.longreprtext[-800:]}"
        if report.skipped and outcome["status"] == "passed":
            outcome["status"], outcome["message"] = "error", "The check was skipped, which no check should be."

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        changed = changed_since(self.guarded)
        if changed:
            self.channel.send("tampered", message="your code replaced parts of the grader or pytest: "
                              + ", ".join(changed[:4]))
            os._exit(0)
        outcome = self.outcomes.get(nodeid, {"status": "error", "message": "No outcome recorded.", "duration": 0.0})
        self.channel.send("result", check=self._name(nodeid), **outcome)


def classify(exc: BaseException, phase: str) -> tuple[str, str]:
    """Turn an exception raised while checking into a status and a message for the learner."""
    from grader.harness import CheckFailed, SetupProblem, learner_frames

    if isinstance(exc, CheckFailed):
        return "failed", str(exc)
    if isinstance(exc, SetupProblem):
        return "error", str(exc)
    frames = learner_frames(exc)
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    if frames:
        where = "\n  where (innermost last):\n" + "\n".join(frames[-6:])
        doing = "preparing the check" if phase == "setup" else "running the check"
        return "error", f"Your code raised {type(exc).__name__}: {first_line} while {doing}.{where}"
    if isinstance(exc, AssertionError):
        return "failed", first_line or "An expectation of the check was not met."
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-500:]
    return "error", f"The check itself failed unexpectedly ({detail}). This may be a grader bug."


def pytest_args(spec: dict[str, Any]) -> list[str]:
    suite = Path(spec["suite_dir"])
    ini = Path(__file__).resolve().parent / "checks.ini"
    return [
        "-c", str(ini), "--rootdir", str(suite), "--confcutdir", str(suite),
        "-p", "no:cacheprovider", "-p", "no:pastebin", "-p", "no:nose", "-p", "no:doctest",
        # These two run gc.collect() several times at exit to find stray exceptions: 0.1 s a run.
        "-p", "no:unraisableexception", "-p", "no:threadexception",
        "--import-mode=importlib", "--assert=plain", "-q", "-o", "console_output_style=classic",
        *(f"{suite / spec['test_file']}::{name}" for name in spec["tests"]),
    ]


def run(spec: dict[str, Any]) -> None:
    """Everything after the heavy imports: shared by a fresh worker and a forked warm one."""
    channel = Channel(spec["event_fd"])
    cap_resources()
    sys.dont_write_bytecode = True
    import grader.harness as harness

    block_network()
    guarded = snapshot()
    if not load_app(spec, channel):
        os._exit(0)
    changed = changed_since(guarded)
    if changed:
        channel.send("tampered", message="importing your app replaced parts of the grader or pytest: "
                     + ", ".join(changed[:4]))
        os._exit(0)
    harness.request_listeners.append(lambda label: channel.send("request", label=label))
    pytest.main(pytest_args(spec), plugins=[EventPlugin(channel)])
    channel.send("finished")
    # Leave at once: a learner's non-daemon thread or atexit hook must not hold the run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    run(json.loads(sys.argv[1]))


if __name__ == "__main__":
    main()

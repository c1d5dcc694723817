"""The watchdog: runs a chapter's checks in a worker process and keeps the clock.

The runner starts `grader.worker` in a fresh temporary working directory, reads its events
from a pipe and enforces three limits: one for importing the learner's app, one for each
request, one for each check. When a limit passes, or the worker dies (`os._exit`, a crash,
the memory cap), the runner kills the worker's whole process group, records why for the check
that was running, and starts a new worker for the checks still to run. So a hung or fatal
endpoint costs exactly one check, and every other check still runs and reports.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader import manifest
from grader.catalogue import Chapter, Check
from grader.processes import (
    LIVE_WORKERS, WORKERS_LOCK, SpawnedWorker, Worker, Zygote, become_subreaper, kill_orphans, worker_environment,
)

PASSED, FAILED, ERROR, TIMEOUT, NOT_RUN = "passed", "failed", "error", "timeout", "not-run"



@dataclass
class Limits:
    request: float = 3.0  # seconds one request may take
    check: float = 20.0  # seconds one check may take in all
    load: float = 30.0  # seconds importing the learner's app may take


@dataclass
class CheckResult:
    check: Check
    status: str
    message: str = ""
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class RunResult:
    chapter: Chapter
    learner_dir: Path
    results: list[CheckResult]
    load_problem: str | None = None
    integrity_problem: str | None = None  # the checks or the grader were tampered with
    seconds: float = 0.0
    workers: int = 0

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def all_passed(self) -> bool:
        return (self.load_problem is None and self.integrity_problem is None
                and self.passed == len(self.chapter.checks))


class _ProtocolViolation(Exception):
    """The worker's events broke the protocol: someone other than the grader wrote them."""


class _Tampered(Exception):
    """The worker found the grader or pytest changed by the learner's code."""


@dataclass
class _WorkerState:
    phase: str = "starting"  # starting, loading, between, check, finished
    check: str | None = None
    request: str | None = None
    phase_started: float = field(default_factory=time.monotonic)
    request_started: float = 0.0
    completed: set[str] = field(default_factory=set)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _log_tail(path: Path, lines: int = 12) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - 4000, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    | " + line[:200] for line in tail)


def describe_exit(returncode: int, doing: str, log: Path) -> str:
    if returncode < 0:
        name = _signal_name(returncode)
        cause = f"was killed by {name}"
        if name == "SIGKILL":
            cause += " (it may have run out of memory: the grader caps it at 3 GiB)"
    else:
        cause = f"exited with status {returncode}"
    question = "" if returncode < 0 else " Does your code call os._exit(), or end the process some other way?"
    tail = _log_tail(log)
    output = f"\n  last output:\n{tail}" if tail else ""
    return f"The process running your app {cause} while {doing}.{question}{output}"


class Runner:
    """Grades one folder against one chapter's checks."""

    def __init__(
        self,
        chapter: Chapter,
        learner_dir: Path,
        limits: Limits | None = None,
        on_result: Callable[[CheckResult], None] | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        self.zygote = zygote
        self.chapter = chapter
        self.learner_dir = learner_dir.resolve()
        self.limits = limits or Limits()
        self.on_result = on_result or (lambda result: None)
        become_subreaper()

    def run(self, only: list[Check] | None = None) -> RunResult:
        started = time.monotonic()
        pending = list(only or self.chapter.checks)
        outcome = RunResult(self.chapter, self.learner_dir, [])
        done: dict[str, CheckResult] = {}
        with tempfile.TemporaryDirectory(prefix="grader-") as scratch:
            suite = self._private_suite(Path(scratch), outcome)
            while pending and outcome.load_problem is None and outcome.integrity_problem is None:
                outcome.workers += 1
                before = len(done)
                for result in self._run_worker(pending, Path(scratch), suite, outcome):
                    done[result.check.name] = result
                    self.on_result(result)
                if len(done) == before and outcome.load_problem is None and outcome.integrity_problem is None:
                    tail = _log_tail(Path(scratch) / f"worker-{outcome.workers}.log")
                    outcome.load_problem = f"The checks could not be started.\n{tail}"
                pending = [check for check in pending if check.name not in done]
            changed = manifest.differences(suite, f"suites/{self.chapter.slug}/")
            if changed and outcome.integrity_problem is None:
                outcome.integrity_problem = (
                    "The hidden checks were changed while they ran (" + "; ".join(changed[:3]) + ")."
                )
        for check in pending:  # only when the app could not be loaded, or the checks are not intact
            why = "the checks are not intact" if outcome.integrity_problem else "your app could not be loaded"
            done[check.name] = CheckResult(check, NOT_RUN, f"Not run: {why} (see above).")
        if outcome.integrity_problem:
            done = {name: CheckResult(result.check, ERROR if result.status != NOT_RUN else NOT_RUN,
                                      "Void: " + outcome.integrity_problem)
                    for name, result in done.items()}
        outcome.results = [done[check.name] for check in (only or self.chapter.checks)]
        outcome.seconds = time.monotonic() - started
        return outcome

    def _private_suite(self, scratch: Path, outcome: RunResult) -> Path:
        """Copy the hidden suite out of the clone and check it against the manifest.

        The worker runs the copy, and the copy is checked again afterwards, so a learner's
        code that rewrites the checks (on disk, in the clone or in the copy) is caught.
        """
        copy = scratch / "suite"
        shutil.copytree(self.chapter.suite_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        changed = manifest.differences(copy, f"suites/{self.chapter.slug}/")
        if changed:
            outcome.integrity_problem = (
                f"The hidden checks of {self.chapter.slug} differ from the grader's manifest "
                f"({'; '.join(changed[:3])}), so a grade from them could not be trusted. Restore them "
                "with `git checkout -- grader/` (course maintainers who changed them on purpose: "
                "`python -m grader.manifest --update`)."
            )
        return copy

    # -- one worker's life ---------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        return {**worker_environment(), "GRADER_LEARNER_DIR": str(self.learner_dir)}

    @staticmethod
    def _scratch_env(env: dict[str, str], workdir: Path) -> dict[str, str]:
        # tempfile and friends write into the worker's own folder, removed after the run.
        return {**env, "TMPDIR": str(workdir), "TEMP": str(workdir), "TMP": str(workdir)}

    def _run_worker(self, pending: list[Check], scratch: Path, suite: Path, outcome: RunResult):
        """Run `pending` in one worker; yield results as they arrive."""
        workdir = Path(tempfile.mkdtemp(dir=scratch, prefix="work-"))
        log = scratch / f"worker-{outcome.workers}.log"
        by_name = {check.name: check for check in pending}
        read_fd, write_fd = os.pipe()
        spec = {
            "learner_dir": str(self.learner_dir),
            "suite_dir": str(suite),
            "test_file": "test_checks.py",
            "app_module": self.chapter.app_module,
            "package": self.chapter.package,
            "tests": [check.test_name for check in pending],
            "event_fd": write_fd,
        }
        env = self._scratch_env(self._environment(), workdir)
        with WORKERS_LOCK:
            if self.zygote is not None:
                process: Worker = self.zygote.launch(spec, workdir, log, env)
            else:
                process = SpawnedWorker(spec, workdir, log, env)
            LIVE_WORKERS.add(process.pid)
        os.close(write_fd)
        state = _WorkerState()
        buffer = b""
        try:
            while True:
                timeout, why = self._deadline(state)
                ready, _, _ = select.select([read_fd], [], [], max(timeout, 0))
                if not ready:
                    self._kill(process)
                    yield from self._interrupted(state, by_name, why, outcome)
                    return
                chunk = os.read(read_fd, 65536)
                if not chunk:  # the worker is gone
                    returncode = process.wait()
                    if state.phase != "finished":
                        yield from self._died(state, by_name, returncode, log, outcome, pending)
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        result = self._handle(json.loads(line), state, by_name, outcome)
                    except _Tampered as exc:
                        outcome.integrity_problem = f"While grading, {exc}, so none of this run's results count."
                        return
                    except (ValueError, _ProtocolViolation) as exc:
                        outcome.integrity_problem = (
                            f"The grader's channel from your app's process was tampered with ({exc}), "
                            "so none of this run's results can be trusted."
                        )
                        return
                    if result is not None:
                        yield result
        finally:
            os.close(read_fd)
            self._kill(process)

    def _deadline(self, state: _WorkerState) -> tuple[float, str]:
        now = time.monotonic()
        if state.phase in ("starting", "loading"):
            return state.phase_started + self.limits.load - now, "load"
        if state.phase == "check" and state.request is not None:
            request_left = state.request_started + self.limits.request - now
            check_left = state.phase_started + self.limits.check - now
            return (request_left, "request") if request_left <= check_left else (check_left, "check")
        return state.phase_started + self.limits.check - now, "check"

    # Which events may follow which: anything else means the channel was forged.
    _ALLOWED = {
        "loading": {"starting"},
        "loaded": {"loading"},
        "load-error": {"loading"},
        "start": {"between"},
        "request": {"check"},
        "result": {"check"},
        "finished": {"between"},
        "tampered": {"loading", "between", "check"},
    }

    def _validate(self, event: object, state: _WorkerState, by_name: dict[str, Check]) -> None:
        if not isinstance(event, dict) or state.phase not in self._ALLOWED.get(event.get("event"), ()):
            raise _ProtocolViolation(f"an unexpected message {str(event)[:120]!r} while {state.phase}")
        kind = event["event"]
        if kind == "start" and (event.get("check") not in by_name or event["check"] in state.completed):
            raise _ProtocolViolation(f"a second start of the check {event.get('check')!r}")
        if kind == "result" and event.get("check") != state.check:
            raise _ProtocolViolation(f"a result for {event.get('check')!r} while {state.check!r} was running")

    def _handle(self, event: dict, state: _WorkerState, by_name: dict[str, Check], outcome: RunResult):
        self._validate(event, state, by_name)
        kind = event["event"]
        now = time.monotonic()
        if kind == "tampered":
            raise _Tampered(event.get("message", "your code changed the grader while it ran"))
        if kind == "loading":
            state.phase, state.phase_started = "loading", now
        elif kind == "loaded":
            state.phase, state.phase_started = "between", now
        elif kind == "load-error":
            outcome.load_problem = event["message"]
            state.phase = "finished"
        elif kind == "start":
            state.phase, state.check, state.request, state.phase_started = "check", event["check"], None, now
        elif kind == "request":
            state.request, state.request_started = event["label"], now
        elif kind == "result":
            state.phase, state.check, state.request, state.phase_started = "between", None, None, now
            check = by_name.get(event["check"])
            state.completed.add(event["check"])
            if check is not None:
                return CheckResult(check, event["status"], event["message"], event["duration"])
        elif kind == "finished":
            state.phase = "finished"
        return None

    def _interrupted(self, state: _WorkerState, by_name: dict[str, Check], why: str, outcome: RunResult):
        if why == "load":
            outcome.load_problem = (
                f"Importing {self.chapter.app_module} did not finish within {self.limits.load:g} s. "
                "Is there an endless loop, or a blocking call, at module level?"
            )
            return
        check = by_name.get(state.check or "") or self._next_pending(by_name, state)
        if check is None:
            return
        if why == "request":
            message = (
                f"{state.request} did not answer within {self.limits.request:g} s. "
                "Look for an endless loop or a long blocking call in the code that handles it."
            )
        elif state.phase == "check":
            message = f"The check did not finish within {self.limits.check:g} s."
        else:
            message = f"The checks stalled for {self.limits.check:g} s before this check began."
        yield CheckResult(check, TIMEOUT, message, self.limits.request if why == "request" else self.limits.check)

    def _died(self, state, by_name, returncode: int, log: Path, outcome: RunResult, pending: list[Check]):
        if state.phase in ("starting", "loading"):
            outcome.load_problem = describe_exit(returncode, f"importing {self.chapter.app_module}", log)
            return
        check = by_name.get(state.check or "") or self._next_pending(by_name, state)
        if check is None:
            return
        doing = f"handling {state.request}" if state.request else f"running the check {check.name}"
        yield CheckResult(check, ERROR, describe_exit(returncode, doing, log))

    @staticmethod
    def _next_pending(by_name: dict[str, Check], state: _WorkerState) -> Check | None:
        """The check that was about to run when the worker stalled or died between checks."""
        return next((check for name, check in by_name.items() if name not in state.completed), None)

    @staticmethod
    def _kill(process: Worker) -> None:
        """Kill the worker and anything it started (they share its process group)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        LIVE_WORKERS.discard(process.pid)
        kill_orphans()

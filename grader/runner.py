"""A grading run: the hidden checks, run by pytest in this (trusted) process, against the
learner's app in processes of its own.

    Runner.run()
      copy the learner's folder into a scratch area (the learner's files are never touched)
      Supervisor: start the app host (sandboxed), import the learner's module there once
      compare the hidden suite with the manifest
      pytest.main(the suite) — each check's `client` fixture gets a fresh app process
      kill every process of the run, remove the scratch area

No learner code is ever imported here: what a check learns about the app, it learns over
HTTP, from files the run owns, and from the app's output. So nothing the app does can change
a verdict; it can only make its own checks fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import manifest
from grader.catalogue import Chapter, Check
from grader.sandbox import BOOT, detect
from grader.supervisor import Limits, Supervisor

PASSED, FAILED, ERROR, TIMEOUT, NOT_RUN = "passed", "failed", "error", "timeout", "not-run"

__all__ = ["Limits", "Runner", "RunResult", "CheckResult", "visible"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def visible(text: str) -> str:
    """Text that the learner's code controls, safe to print: control characters (escape
    sequences, bidirectional overrides) are shown as escapes instead of acting on the screen."""
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    # unicode_escape spells each one out: \x1b, \u202e, \ud800 (a lone surrogate, which no
    # terminal or file encoding accepts, from a path's undecodable bytes or a JSON escape).
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace").decode(), text)


@dataclass
class CheckResult:
    check: Check
    status: str
    message: str = ""
    duration: float = 0.0
    about_app: bool = False  # a hang or crash in the app, not the check's subject: no hint

    def __post_init__(self) -> None:
        self.message = visible(self.message)

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class RunResult:
    chapter: Chapter
    learner_dir: Path
    results: list[CheckResult]
    load_problem: str | None = None
    integrity_problem: str | None = None  # the hidden checks differ from the manifest
    seconds: float = 0.0
    workers: int = 0  # app hosts started: more than one means a hang or crash forced a restart
    sandbox: str = "none"  # "bubblewrap", or "none" where the platform allows no namespaces
    sandbox_detail: str = ""

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def all_passed(self) -> bool:
        return (self.load_problem is None and self.integrity_problem is None
                and self.passed == len(self.results) > 0)

    @property
    def done(self) -> bool:
        """Every check of the chapter ran and passed (not only those a `--only` run chose)."""
        return self.all_passed and len(self.results) == len(self.chapter.checks)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: the run ends in order, then the command exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_signals_seen: list[int] = []


def stop_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into `Interrupted` in the main thread, so that a closed
    terminal or a CI timeout ends the run the same orderly way as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        _signals_seen.append(signum)
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


# -- the scratch area ----------------------------------------------------------------------------

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", "venv", ".mypy_cache",
                                  ".pytest_cache", ".ipynb_checkpoints", "node_modules")
COPY_LIMIT = 200 * 1024**2  # bytes: an exercise folder is a few files, not a virtual environment
ENTRY_LIMIT = 20_000  # files and folders, links followed: a loop of links inside the folder ends here


class SuiteProblem(Exception):
    """The hidden suite itself could not run: a grader bug, reported as such."""


class CopyProblem(Exception):
    """The learner's folder could not be copied for grading; the message says why."""


def remove_tree(path: Path) -> None:
    """Remove a folder, whatever the app left in it (deep trees, odd names, read-only files).
    Never raises: a scratch folder that cannot go is left for the next run's sweep."""
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        pass
    for command in (["chmod", "-R", "u+rwX", str(path)], ["rm", "-rf", str(path)]):
        try:
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError):
            pass


def _sweep_stale_scratch(parent: Path) -> None:
    """Remove scratch folders of runs that were killed outright (SIGKILL leaves them)."""
    for folder in parent.glob("grader-run-*"):
        try:
            owner = int((folder / "owner").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            remove_tree(folder)
        except PermissionError:
            pass


class Scratch:
    """A run's private folder: `private/` for the checker, `app/` for the app (its only view)."""

    def __init__(self) -> None:
        parent = Path(tempfile.gettempdir())
        _sweep_stale_scratch(parent)
        self.root = Path(tempfile.mkdtemp(prefix="grader-run-", dir=parent))
        (self.root / "owner").write_text(str(os.getpid()))
        self.private = self.root / "private"
        self.area = self.root / "app"
        for folder in (self.private, self.area / "boot", self.area / "home", self.area / "tmp"):
            folder.mkdir(parents=True)
        shutil.copy2(BOOT, self.area / "boot" / BOOT.name)

    def copy_learner(self, folder: Path) -> None:
        """Copy the learner's folder: its regular files and folders, nothing else.

        A symbolic link is followed when it stays inside the folder, and refused with its
        reason when it leads out of it: the grade is for what is in the folder. Devices, pipes
        and sockets are left out (reading one could take forever), and the size is capped.
        """
        home = folder.resolve()
        total = entries = 0

        def ignore(directory: str, names: list[str]) -> set[str]:
            nonlocal total, entries
            entries += len(names)
            if entries > ENTRY_LIMIT:
                raise CopyProblem(f"{visible(str(folder))} holds more than {ENTRY_LIMIT:,} files and folders (links "
                                  "followed); an exercise folder needs only its code. Is there a loop of links?")
            skipped = set(_IGNORED(directory, names))
            for name in names:
                path = Path(directory, name)
                if name in skipped:
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(home):
                    shown = visible(str(path.relative_to(folder)))
                    raise CopyProblem(
                        f"{shown} is a symbolic link to {visible(str(path.resolve()))}, outside the folder being "
                        f"graded. The grader grades only what is inside {visible(str(folder))}: copy the files in, "
                        "or grade the other folder with --path.")
                kind = path.stat().st_mode if path.exists() else 0
                if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
                    skipped.add(name)  # a device, a pipe, a socket, a broken link
                elif stat.S_ISREG(kind):
                    total += path.stat().st_size
            if total > COPY_LIMIT:
                raise CopyProblem(f"{visible(str(folder))} holds more than {COPY_LIMIT >> 20} MiB; an exercise "
                                  "folder needs only its code. Is a virtual environment or a data file inside it?")
            return skipped

        try:
            shutil.copytree(folder, self.area / "src", ignore=ignore)
        except CopyProblem:
            raise
        except (shutil.Error, OSError, RecursionError, RuntimeError) as exc:  # RuntimeError: a link loop (3.11)
            detail = exc.args[0][0][2] if isinstance(exc, shutil.Error) and exc.args and exc.args[0] else exc
            raise CopyProblem(f"{visible(str(folder))} could not be copied for grading: {visible(str(detail))}") from None

    def remove(self) -> None:
        remove_tree(self.root)


# -- pytest, in this process -----------------------------------------------------------------------


def pytest_args(suite: Path, tests: list[str]) -> list[str]:
    ini = Path(__file__).resolve().parent / "checks.ini"
    return [
        "-c", str(ini), "--rootdir", str(suite), "--confcutdir", str(suite),
        "-p", "no:cacheprovider", "-p", "no:pastebin", "-p", "no:doctest", "-p", "no:terminal",
        "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:logging", "-p", "no:capture",
        "-p", "no:faulthandler", "--import-mode=importlib", "--assert=plain",
        *(f"{suite / 'test_checks.py'}::{name}" for name in tests),
    ]


# Environment variables that would change how pytest runs the checks: none applies to a run.
_PYTEST_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


class ResultPlugin:
    """Collects each check's outcome and keeps the check's clock."""

    def __init__(self, by_test: dict[str, Check], supervisor: Supervisor,
                 on_result: Callable[[CheckResult], None]) -> None:
        self.by_test, self.supervisor, self.on_result = by_test, supervisor, on_result
        self.started = 0
        self.results: dict[str, CheckResult] = {}
        self._outcome: dict[str, Any] = {}
        self._session: Any = None

    def pytest_sessionstart(self, session: Any) -> None:
        self._session = session

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._outcome = {"status": PASSED, "message": "", "duration": 0.0, "about_app": False}
        name = nodeid.rsplit("::", 1)[-1]
        check = self.by_test.get(name)
        self.started += 1
        self.supervisor.checks_after = len(self.by_test) - self.started  # none: no app to start ahead
        self.supervisor.begin_check(name, check.seconds if check is not None else None)

    def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
        if call.excinfo is not None and self._outcome["status"] == PASSED:
            self._outcome.update(classify(call.excinfo.value, call.when))

    def pytest_runtest_logreport(self, report: Any) -> None:
        self._outcome["duration"] += report.duration
        if report.skipped and self._outcome["status"] == PASSED:
            self._outcome.update(status=ERROR, message="The check was skipped, which no check should be.")

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.supervisor.end_check()
        if self.supervisor.load_problem is not None or self.supervisor.stopped_because:
            self._session.shouldstop = "the app could not be loaded, or the run went over its limit"
        check = self.by_test.get(nodeid.rsplit("::", 1)[-1])
        if check is None:
            return
        result = CheckResult(check, **self._outcome)
        self.results[check.name] = result
        self.on_result(result)


def classify(exc: BaseException, phase: str) -> dict[str, Any]:
    """An exception raised while checking, as a status and a message for the learner."""
    from grader.harness import AppProblem, CheckFailed, SetupProblem

    if isinstance(exc, AppProblem):
        return {"status": exc.status, "message": str(exc), "about_app": True}
    if isinstance(exc, CheckFailed):
        return {"status": FAILED, "message": str(exc)}
    if isinstance(exc, SetupProblem):
        return {"status": ERROR, "message": str(exc)}
    if isinstance(exc, AssertionError):
        return {"status": FAILED, "message": str(exc).strip() or "An expectation of the check was not met."}
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    detail = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    return {"status": ERROR, "message": f"The check stopped on an answer from your app that it could not read "
                                        f"({detail}). Look at that route's response; if it looks right, this may "
                                        "be a grader bug: please report it with this message."}


# What every `grader check` imports before it grades: a warm process has them already.
_WARM_MODULES = ["grader.cli", "grader.runner", "grader.harness", "grader.report", "grader.supervisor",
                 "grader.sandbox", "grader.workspace", "pytest", "_pytest.python", "_pytest.main",
                 "_pytest.assertion.rewrite", "_pytest.junitxml", "httpx"]


def _check_in_fork(argv: list[str], env: dict[str, str], cwd: str, stderr: str) -> None:
    """`grader check` in a process forked from the warm one: as if run on the command line,
    with `env` as its environment, no input, no output but `stderr`."""
    quiet = os.open(os.devnull, os.O_RDWR)
    errors = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd, target in ((0, quiet), (1, quiet), (2, errors)):
        os.dup2(target, fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # found again from this environment's TMPDIR
    code: Any = 1
    try:
        from grader.cli import main

        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 1)


def _warm_context() -> Any:
    """A multiprocessing context whose processes fork from one server that has imported the
    grader, pytest and httpx once (about half a CPU-second per `grader check` saved), or None
    where there is no such server (Windows)."""
    import multiprocessing

    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return None
    context.set_forkserver_preload(_WARM_MODULES)
    return context


def check_apart(chapter: Chapter, folder: Path, request_limit: float = 3.0,
                env: dict[str, str] | None = None, record: bool = True, only: list[str] | None = None,
                warm: bool = False) -> dict:
    """`grader check` in a process of its own: the grader-result/1 record it wrote.

    For callers that must not run pytest in their own process: a Jupyter kernel (the notebook
    magic), and `grader verify` and `grader batch`, which grade many folders side by side.
    With `warm`, the process is forked from a server that has imported the grader already
    (for many runs); otherwise it is a new interpreter.
    """
    with tempfile.TemporaryDirectory(prefix="grader-apart-") as folder_for_result:
        result = Path(folder_for_result) / "result.json"
        argv = ["check", chapter.slug, "--path", str(folder),
                "--timeout", str(request_limit), "--json", str(result), *([] if record else ["--no-record"]),
                *(option for name in only or () for option in ("--only", name))]
        context = _warm_context() if warm else None
        if context is not None:
            said = Path(folder_for_result) / "stderr"
            process = context.Process(
                target=_check_in_fork, args=(argv, dict(os.environ if env is None else env), os.getcwd(), str(said)))
            process.start()
            process.join()
            returncode = process.exitcode
            stderr = said.read_bytes() if said.exists() else b""
        else:
            finished = subprocess.run([sys.executable, "-m", "grader", *argv], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
            returncode, stderr = finished.returncode, finished.stderr
        try:
            data = json.loads(result.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
                raise ValueError("not a grader-result/1 record")
            return data
        except (OSError, ValueError) as exc:
            detail = stderr.decode(errors="replace").strip()[-2000:] or f"exit status {returncode}"
            raise RuntimeError(f"`grader check` did not produce a result ({exc}): {detail}") from None


def run_apart(chapter: Chapter, folder: Path, request_limit: float = 3.0,
              env: dict[str, str] | None = None, record: bool = True, only: list[str] | None = None,
              warm: bool = False) -> RunResult:
    """`check_apart`, read back as a RunResult."""
    from grader.report import from_json  # report imports this module

    data = check_apart(chapter, folder, request_limit, env, record, only, warm)
    try:
        return from_json(data, chapter)
    except (KeyError, TypeError) as exc:
        raise RuntimeError(f"`grader check` did not produce a result (no {exc} in it)") from None


class Runner:
    """Grades one folder against one chapter's checks."""

    def __init__(
        self,
        chapter: Chapter,
        learner_dir: Path,
        limits: Limits | None = None,
        on_result: Callable[[CheckResult], None] | None = None,
        prepared: tuple[Scratch, Supervisor] | None = None,
        only: list[Check] | None = None,
    ) -> None:
        self.only = only  # run these checks only (`grader check --only`)
        self.chapter = chapter
        self.learner_dir = learner_dir.resolve()
        self.limits = limits or Limits()
        self.on_result = on_result or (lambda result: None)
        self.prepared = prepared  # a scratch area whose app host is already warm (grader watch)

    @staticmethod
    def prepare(chapter: Chapter, limits: Limits) -> tuple[Scratch, Supervisor]:
        """A scratch area and a started app host, ready for `Runner(..., prepared=...)`."""
        scratch = Scratch()
        try:
            return scratch, Supervisor(chapter, scratch.area, scratch.private, limits, detect())
        except BaseException:
            scratch.remove()
            raise

    def run(self, only: list[Check] | None = None) -> RunResult:
        started = time.monotonic()
        checks = list(only or self.only or self.chapter.checks)
        scratch, supervisor = self.prepared or self.prepare(self.chapter, self.limits)
        self.prepared = None
        supervisor.limits = self.limits
        outcome = RunResult(self.chapter, self.learner_dir, [], sandbox=supervisor.sandbox.name,
                            sandbox_detail=supervisor.sandbox.detail)
        done: dict[str, CheckResult] = {}
        try:
            try:
                scratch.copy_learner(self.learner_dir)
            except CopyProblem as exc:
                outcome.load_problem = str(exc)
            if outcome.load_problem is None:
                outcome.integrity_problem = self._suite_problem()
            if outcome.load_problem is None and outcome.integrity_problem is None:
                supervisor.begin_load()
                try:
                    done = self._pytest(checks, supervisor)
                except SuiteProblem as problem:
                    outcome.integrity_problem = str(problem)
                    done = {}
                outcome.load_problem = supervisor.finish_load()
                if outcome.load_problem is not None:
                    done = {}
        finally:
            supervisor.close()
            scratch.remove()
        outcome.workers = supervisor.hosts_started
        why = ("the hidden checks are not intact" if outcome.integrity_problem
               else "your app could not be loaded" if outcome.load_problem
               else supervisor.stopped_because or "the run stopped early")
        for check in checks:
            if check.name not in done:
                done[check.name] = CheckResult(check, NOT_RUN, f"Not run: {why}.")
        outcome.results = [done[check.name] for check in checks]
        outcome.load_problem = visible(outcome.load_problem) if outcome.load_problem else None
        outcome.seconds = time.monotonic() - started
        return outcome

    def _suite_problem(self) -> str | None:
        changed = manifest.differences(self.chapter.suite_dir, f"suites/{self.chapter.slug}/")
        if not changed:
            return None
        return (
            f"The hidden checks of {self.chapter.slug} differ from the grader's manifest "
            f"({'; '.join(changed[:3])}), so a grade from them could not be trusted. Restore them "
            "with `git checkout -- grader/` (course maintainers who changed them on purpose: "
            "`python -m grader.manifest --update`)."
        )

    def _pytest(self, checks: list[Check], supervisor: Supervisor) -> dict[str, CheckResult]:
        import pytest

        from grader import harness

        plugin = ResultPlugin({check.test_name: check for check in checks}, supervisor, self.on_result)
        harness.install(supervisor)
        seen = len(_signals_seen)
        saved = {name: os.environ.pop(name) for name in _PYTEST_ENV if name in os.environ}
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # installed plugins (nbval...) stay out
        import contextlib
        import io

        said = io.StringIO()  # pytest's own words: shown only if the checks could not even start
        try:
            with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                code = pytest.main(pytest_args(self.chapter.suite_dir, [check.test_name for check in checks]),
                                   plugins=[plugin])
            if not plugin.results and code not in (0, 1, 2):
                tail = "\n".join(said.getvalue().strip().splitlines()[-12:])
                raise SuiteProblem(f"The hidden checks could not be started (pytest exit status {int(code)}). This "
                                   f"is a problem with the grader, not your code; please report it:\n{tail}")
        finally:
            harness.install(None)
            for name in _PYTEST_ENV:
                os.environ.pop(name, None)
            os.environ.update(saved)
        if len(_signals_seen) > seen:  # pytest stops on KeyboardInterrupt and returns: pass it on
            raise Interrupted(_signals_seen[-1])
        return plugin.results

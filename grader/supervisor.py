"""The checker's side of a run: it gives each check a fresh app process and keeps the clock.

The supervisor owns the run's app host (see `grader.sandbox`), asks it to import the
learner's module once, and then, for every check, to fork a fresh app process on freshly
created tables, served by uvicorn on a Unix socket that the supervisor created. Checks talk
to it over HTTP (`grader.harness.CheckClient`).

Deadlines are kept by a watchdog thread in this process, which the app cannot see, signal or
slow down by talking: when a request, a check or the whole run goes over its limit, the
watchdog kills the app's host outright, which ends whatever the check was waiting for. The
next check then gets a new host. So a hang costs exactly the check it happened in.
"""

from __future__ import annotations

import heapq
import itertools
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.catalogue import Chapter
from grader.processes import Pump
from grader.sandbox import App, AppHost, HostProblem, Sandbox

if TYPE_CHECKING:
    from grader.harness import CheckClient


@dataclass
class Limits:
    request: float = 3.0  # seconds one request may take
    check: float = 20.0  # seconds one check may take in all
    load: float = 30.0  # seconds starting the app's host and importing the learner's module may take
    startup: float = 10.0  # seconds one app process may take to be ready (tables, lifespan)
    run: float = 600.0  # seconds the whole run may take


class Watchdog(threading.Thread):
    """Calls an action when its deadline passes, unless it was disarmed first."""

    def __init__(self) -> None:
        super().__init__(name="grader-watchdog", daemon=True)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()
        self._counter = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self.start()

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        with self._changed:
            token = next(self._counter)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, action))
            self._live.add(token)
            self._changed.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._changed:
            self._live.discard(token)

    def run(self) -> None:
        with self._changed:
            while not self._closed:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                deadline, token, action = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
                self._changed.release()
                try:
                    action()
                finally:
                    self._changed.acquire()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()


_OFFLINE = ("Network is unreachable", "Temporary failure in name resolution", "Name or service not known",
            "No address associated")


def describe_crash(event: dict[str, Any], headline: str = "crashed instead of answering") -> str:
    """A crash the app reported, as the learner should read it."""
    if event.get("type") == "SystemExit":
        what = f"it called sys.exit({event.get('exit_code')})"
    else:
        what = f"{event.get('type', 'an exception')}: {event.get('message', '')}"
    text = f"Your app {headline}: {what}"
    if any(marker in str(event.get("message", "")) for marker in _OFFLINE):
        text += "\n  (The grader runs your app without network access: the checks work offline.)"
    frames = [str(frame) for frame in event.get("frames") or [] if isinstance(frame, str)][-6:]
    if frames:
        text += "\n  where (innermost last):\n" + "\n".join(frames)
    return text


def _frames_from_traceback(text: str, home: Path) -> list[str]:
    """Turn a formatted traceback's frames in the learner's files into our one-line form."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = re.match(r'\s*File "(.+)", line (\d+), in (.+)', line)
        if match and match.group(1).startswith(str(home) + os.sep):
            code = lines[index + 1].strip() if index + 1 < len(lines) else ""
            found.append(f"    {match.group(1)[len(str(home)) + 1:]}, line {match.group(2)}, in {match.group(3)}: {code}")
    return found[-6:]


def describe_exit(status: int | None, doing: str, output: list[str]) -> str:
    if status is None:
        cause = "stopped answering"
    elif status < 0 or status >= 128:
        number = -status if status < 0 else status - 128
        name = {9: "SIGKILL", 11: "SIGSEGV", 6: "SIGABRT", 15: "SIGTERM"}.get(number, f"signal {number}")
        cause = f"was killed by {name}"
    else:
        cause = f"exited with status {status}"
    question = " Does your code call os._exit(), or end the process some other way?" if status is not None and 0 <= status < 128 else ""
    tail = ("\n  last output:\n" + "\n".join("    | " + line for line in output)) if output else ""
    return f"The process running your app {cause} while {doing}.{question}{tail}"


class Supervisor:
    """One run's app processes, deadlines and restarts."""

    def __init__(self, chapter: Chapter, area: Path, private: Path, limits: Limits, sandbox: Sandbox) -> None:
        self.chapter, self.area, self.private, self.limits, self.sandbox = chapter, area, private, limits, sandbox
        self.pump = Pump()
        self.watchdog = Watchdog()
        self.host: AppHost | None = AppHost(area, sandbox, self.pump)
        self.hosts_started = 1
        self.numbers = itertools.count(1)
        self.load_problem: str | None = None
        self.stopped_because: str | None = None  # the whole run went over its limit
        self._check_expired: str | None = None
        self._hung: dict[int, str] = {}  # app number -> the request that went over its limit
        self._check_timer: int | None = None
        self._check_seconds = limits.check
        self._run_timer: int | None = None
        self._load_sent = False  # begin_load asked the host to import the learner's module
        self._load_started = time.monotonic()
        self._loaded: bool | None = None
        self._next: App | None = None  # the next check's app, started while this check runs
        self.checks_after: int | None = None  # checks still to come after this one (None: not known)

    # -- loading -----------------------------------------------------------------------------

    def _spec(self) -> dict[str, Any]:
        # The chapter's outside services: the host relays each port to the socket where the
        # checks serve it, for every app it starts (see `services` in chapter.toml).
        services = [{"port": port, "socket": str(self.service_socket(name))}
                    for name, port in self.chapter.services.items()]
        return {"home": str(self.area / "src"), "cwd": str(self._workdir(0)), "module": self.chapter.app_module,
                "package": self.chapter.package, "names": self.chapter.names, "services": services,
                "environment": self.chapter.environment}

    def _workdir(self, number: int) -> Path:
        folder = self.area / f"work-{number}"
        folder.mkdir(exist_ok=True)
        return folder

    def begin_load(self) -> None:
        """Ask the host to import the learner's module; the answer is read by `finish_load`.

        The host reads the request once its libraries are imported, so the import of the
        learner's module overlaps with pytest's own start-up in this process.
        """
        assert self.host is not None
        self._load_started = time.monotonic()
        self._run_timer = self.watchdog.arm(self.limits.run, self._run_over)
        self._load_sent = True
        self.host.send_load(self._spec())

    def finish_load(self) -> str | None:
        """Wait for the import; the load problem, if any (also kept in `load_problem`)."""
        assert self.host is not None
        if self._loaded is not None:
            return self.load_problem
        try:
            self.load_problem = self.host.receive_load(self._load_started + self.limits.load)
        except TimeoutError:
            self.host.kill()
            self.load_problem = (
                f"Importing {self.chapter.app_module} did not finish within {self.limits.load:g} s. "
                "Is there an endless loop, or a blocking call, at module level?"
            )
        except HostProblem:
            status = self._host_status()
            self.load_problem = describe_exit(status, f"importing {self.chapter.app_module}", self.host.output.last_lines())
        self._loaded = self.load_problem is None
        return self.load_problem

    def load(self) -> str | None:
        self.begin_load()
        return self.finish_load()

    def _host_status(self) -> int | None:
        assert self.host is not None
        try:
            status = self.host.process.wait(timeout=2)
        except Exception:
            status = None
        self.host.kill()
        return status

    def _replace_host(self) -> AppHost:
        """A new host after the last one was killed (a hang) or died (a crash)."""
        from grader.harness import AppCrashed

        self.host = AppHost(self.area, self.sandbox, self.pump)
        self.hosts_started += 1
        self.host.send_load(self._spec())
        try:
            problem = self.host.receive_load(time.monotonic() + self.limits.load)
        except (HostProblem, TimeoutError):
            self.host.kill()
            problem = "it did not import again within the time limit"
        if problem is not None:
            raise AppCrashed("Your app could not be started again after the last check:\n" + problem)
        return self.host

    # -- deadlines ---------------------------------------------------------------------------

    def _run_over(self) -> None:
        self.stopped_because = f"the whole run went over its limit of {self.limits.run:g} s"
        if self.host is not None:
            self.host.kill()

    def begin_check(self, name: str, seconds: float | None = None) -> None:
        """Start the check's clock: the limit for every check, or the check's own (`seconds` in
        chapter.toml, for a check that must wait out a rate-limit window)."""
        self._check_expired = None
        self._check_seconds = seconds or self.limits.check

        def over() -> None:
            self._check_expired = name
            if self.host is not None:
                self.host.kill()

        self._check_timer = self.watchdog.arm(self._check_seconds, over)

    def end_check(self) -> None:
        if self._check_timer is not None:
            self.watchdog.disarm(self._check_timer)
            self._check_timer = None

    @contextmanager
    def request_deadline(self, app: App, label: str) -> Iterator[None]:
        def over() -> None:
            self._hung[app.number] = label
            app.host.kill()

        token = self.watchdog.arm(self.limits.request, over)
        try:
            yield
        finally:
            self.watchdog.disarm(token)

    # -- one check's app -----------------------------------------------------------------------

    def _stopped(self) -> Exception | None:
        from grader.harness import AppHung, RunStopped

        if self.stopped_because:
            return RunStopped(f"Not run: {self.stopped_because}.")
        if self._check_expired:
            return AppHung(f"The check did not finish within {self._check_seconds:g} s.")
        return None

    def _start(self, host: AppHost, env: dict[str, str] | None = None, **options: Any) -> App:
        number = next(self.numbers)
        if options.get("import"):
            options["load"] = self._spec()
        return host.start(number, self._workdir(number), env or {}, self._address(number),
                          time.monotonic() + self.limits.startup, **options)

    def _address(self, number: int) -> str:
        """Where the checker reaches app N. On Linux, a name in the abstract socket namespace of
        the checker's network namespace: no file the app could see or touch, and no limit of
        108 bytes on a path under a long TMPDIR. Elsewhere, a socket file in the private folder."""
        if sys.platform.startswith("linux"):
            return f"\0grader-{os.getpid()}-{id(self):x}-{number}"
        return str(self.private / f"app-{number}.sock")

    def service_socket(self, name: str) -> Path:
        """Where a check's service listens for `launch(forward=...)`: a Unix socket in the app's
        view (the app can reach it anyway through the forwarded port)."""
        folder = self.area / "services"
        folder.mkdir(exist_ok=True)
        return folder / f"{name}.sock"

    def launch(self, env: dict[str, str] | None = None, fresh_import: bool = False,
               forward: dict[int, Path] | None = None, command: list[str] | None = None) -> App:
        """A process for a check that needs more than `app_for_check`, for the later chapters:

        - `env`: environment variables of this app process only;
        - `fresh_import`: import the learner's module in this process, under that environment
          (settings read at import), instead of using the host's import; an import that fails
          ends the process, and `App.wait_exit` gives its status and `App.output` its message;
        - `forward`: {port: unix socket}: 127.0.0.1:port inside the sandbox reaches a service
          the check runs on that Unix socket (an outside service's stub, an SMTP server, an
          error tracker speaking the Sentry protocol);
        - `command`: run this command in the app's folder instead of serving (the learner's
          own tests, say); its output and exit status are the App's.
        """
        from grader.harness import AppCrashed

        if (problem := self._stopped()) is not None:
            raise problem
        if self._load_sent and self.host is not None and not self.host.dead:
            self.finish_load()  # its answer comes first on the control socket
        elif self._load_sent:
            self._replace_host()  # with the module imported again, for the checks that come next
        elif self.host is None or self.host.dead:
            self.host = AppHost(self.area, self.sandbox, self.pump)
            self.hosts_started += 1
        assert self.host is not None
        self.host.wait_ready(time.monotonic() + self.limits.load)
        options: dict[str, Any] = {}
        if fresh_import:
            options["import"] = True
        if forward:
            options["forward"] = [{"port": port, "socket": str(path)} for port, path in forward.items()]
        if command:
            options["exec"] = command
        try:
            return self._start(self.host, env, **options)
        except (HostProblem, TimeoutError):
            self.host.kill()
            raise AppCrashed("A fresh process for this check could not be started.") from None

    def _prestart(self, host: AppHost) -> None:
        """Start the next check's app now, so that its start-up overlaps this check.

        Only when each app's database is its own (a relative SQLite path lands in each app's
        own folder); a database shared by path must not be reset while a check uses it. Not
        during the last check: no check would use it.
        """
        if self._next is None and host.own_databases and not host.dead and self.checks_after != 0:
            try:
                self._next = self._start(host)
            except (HostProblem, TimeoutError):
                self._next = None

    @contextmanager
    def app_for_check(self) -> Iterator[CheckClient]:
        from grader.harness import AppCrashed, CheckClient, RunStopped

        if self.finish_load() is not None:
            raise RunStopped("Not run: your app could not be loaded.")
        if (problem := self._stopped()) is not None:
            raise problem
        host = self.host if self.host is not None and not self.host.dead else self._replace_host()
        app, self._next = self._next, None
        if app is not None and app.host is not host:
            app = None
        try:
            app = app or self._start(host)
        except (HostProblem, TimeoutError):
            host.kill()
            raise self._stopped() or AppCrashed(describe_exit(None, "starting a fresh app for this check",
                                                              host.output.last_lines())) from None
        client = CheckClient(app, self)
        try:
            self._wait_until_serving(app)
            self._prestart(host)
            yield client
        finally:
            client.close()
            app.stop()

    def wait_serving(self, app: App) -> None:
        """Wait until a launched app answers, or raise AppHung/AppCrashed saying why not."""
        self._wait_until_serving(app)

    def _wait_until_serving(self, app: App) -> None:
        from grader.harness import AppCrashed, AppHung

        ready = app.events.wait_for(lambda event: event["event"] in ("started", "startup-failed", "reset-error",
                                                                     "load-error"),
                                    self.limits.startup)
        if ready is not None and ready["event"] == "started":
            serving = app.events.wait_for(lambda event: event["event"] == "serving", 0)
            path = serving.get("database") if serving else None
            if isinstance(path, str) and Path(path).resolve().is_relative_to(self.area):
                app.database = Path(path).resolve()  # the checks may read it; it is in the run's own folder
            return
        if (problem := self._stopped()) is not None:
            raise problem
        if ready is None:
            if not app.events.closed:
                app.host.kill()
                raise AppHung(f"Your app did not finish starting (its lifespan) within {self.limits.startup:g} s. "
                              "Look for an endless loop or a long blocking call in its startup code.")
            raise AppCrashed(describe_exit(app.stop(), "starting up", app.output.last_lines()))
        if ready["event"] == "load-error":
            raise AppCrashed("Your app could not be imported in this check's process:\n" + str(ready.get("message")))
        if ready["event"] == "reset-error":
            raise AppCrashed(describe_crash(ready, headline="could not create its tables"))
        message = str(ready.get("message", ""))  # startup-failed: the lifespan's traceback, as text
        last = (message.strip().splitlines() or ["(no message)"])[-1]
        frames = _frames_from_traceback(message, self.area / "src")
        where = "\n  where (innermost last):\n" + "\n".join(frames) if frames else ""
        raise AppCrashed(f"Your app's startup (its lifespan) failed: {last[:300]}{where}")

    def open_database(self, app: App) -> int:
        """Open app's database file for the checker, safely: each step below the run's folder
        without following links, and only a regular file (the app may have swapped any of them)."""
        from grader.harness import CheckFailed

        if app.database is None:
            raise CheckFailed("Your app's database file could not be found.")
        relative = app.database.relative_to(self.area).parts
        fd = os.open(self.area, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in relative[:-1]:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            database = os.open(relative[-1], os.O_RDWR | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as problem:
            raise CheckFailed(f"Your app's database file could not be opened ({problem.strerror}): is it a "
                              "plain SQLite file, in the folder your app was started in?") from None
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(database).st_mode):
            os.close(database)
            raise CheckFailed("Your app's database is not a plain file.")
        return database

    def before_request(self, app: App, label: str) -> None:
        from grader.harness import AppHung

        if (problem := self._stopped()) is not None:
            raise problem
        if app.number in self._hung:
            raise AppHung(f"{self._hung[app.number]} did not answer within {self.limits.request:g} s, "
                          "so the app was stopped.")

    def explain_lost(self, app: App, label: str, shown: str) -> Exception:
        """The connection to the app failed: say why, from what this side knows."""
        from grader.harness import AppCrashed, AppHung

        if app.number in self._hung:
            return AppHung(f"{label} did not answer within {self.limits.request:g} s. "
                           "Look for an endless loop or a long blocking call in the code that handles it.")
        if (problem := self._stopped()) is not None:
            if isinstance(problem, AppHung):
                return AppHung(f"{problem} It was waiting for {label}.")
            return problem
        exited = app.events.wait_for(lambda event: event["event"] == "crash" and event.get("type") == "SystemExit", 0.2)
        status = app.stop()
        if exited is not None:
            return AppCrashed(describe_crash(exited) + f"\n  sent: {shown}")
        return AppCrashed(describe_exit(status, f"handling {label}", app.output.last_lines()))

    def crash_report(self, app: App, request: str) -> str | None:
        event = app.events.wait_for(lambda item: item["event"] == "crash" and item.get("request") == request, 1.0)
        return describe_crash(event) if event is not None else None

    def close(self) -> None:
        if self._next is not None:
            self._next.stop()
        if self._run_timer is not None:
            self.watchdog.disarm(self._run_timer)
        self.watchdog.close()
        if self.host is not None:
            self.host.kill()
        self.pump.close()

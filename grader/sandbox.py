"""Running the learner's app out of the checker's reach.

`AppHost` starts `grader/apphost.py` (copied on its own into the run's app area) in a sandbox
where the platform allows one: bubblewrap with new user, PID, network, IPC and mount
namespaces, all capabilities dropped, the clone, the grader, home and the temporary folders
hidden, and only the run's app area writable. There the learner's code cannot see or signal
the checker, cannot read the hidden checks, and cannot reach the network. Where bubblewrap is
missing or namespaces are not allowed, the host runs as a plain child process and the result
says `sandbox: none`.

Everything the host says is treated as untrusted: it can make a check fail, never pass. The
host is killed by its process group (bubblewrap's PID namespace takes everything inside with
it); without a sandbox the runner is a child subreaper and ends whatever escaped.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from grader.processes import Pump, become_subreaper, kill_orphans, own_children, register_child, unregister_child

BOOT = Path(__file__).resolve().parent / "apphost.py"
MESSAGE_LIMIT = 1 << 20
STOP_GRACE = 2.0  # seconds the host may take to stop one app process before the whole host is killed
OUTPUT_LIMIT = 1 << 20  # bytes of an app process's output kept for the checks (the rest is counted)
EVENTS_LIMIT = 1 << 20  # bytes of an app process's reports parsed (a report is a few hundred bytes)
EVENT_LINE_LIMIT = 1 << 16

# The environment of the app: nothing of the learner's shell, so a grade does not depend on it.
_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT")


@dataclass(frozen=True)
class Sandbox:
    name: str  # "bubblewrap" or "none"
    detail: str  # what it isolates, or why there is none

    @property
    def isolated(self) -> bool:
        return self.name != "none"

    def describe(self) -> str:
        return f"{self.name} ({self.detail})"


def far_time_zone() -> str:
    """A time zone whose date differs from UTC's right now (UTC-12 in the UTC morning, UTC+14
    from 10:00 UTC), so an app that takes the server's local date for UTC's shows it."""
    from datetime import datetime, timezone

    return "Etc/GMT+12" if datetime.now(timezone.utc).hour < 12 else "Etc/GMT-14"


class HostProblem(Exception):
    """The app host died, hung, or said something that is not part of the protocol."""


def _hidden_roots() -> list[Path]:
    """Folders the app must not see: the clone (hidden checks, solutions), the grader, home, temp.

    Temp is /tmp, /var/tmp and wherever TMPDIR points: other runs' scratch areas live there (a
    batch's other learners), and so does the socket of the warm server that `grader batch`
    forks its runs from, which would run whatever a connecting process sent it."""
    import tempfile

    from grader.catalogue import course_root

    roots = [Path(__file__).resolve().parent, Path("/tmp"), Path("/var/tmp")]
    scratch = Path(tempfile.gettempdir()).resolve()
    if scratch != Path(scratch.anchor) and scratch not in roots:
        roots.append(scratch)
    if (root := course_root()) is not None:
        roots.append(root)
    home = Path.home()
    if home != Path("/") and home.is_dir():
        roots.append(home)
    return roots


def _needed_paths() -> list[Path]:
    """What the interpreter needs even where it lies under a hidden folder (a venv in the clone):
    its prefixes and its site-packages, nothing else from sys.path (which, in a process that has
    graded before, may hold a suite's folder)."""
    import site

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent}
    paths.add(Path(os.path.realpath(sys.executable)).parent.parent)
    sites = [*site.getsitepackages(), site.getusersitepackages() if site.ENABLE_USER_SITE else ""]
    paths.update(Path(folder).resolve() for folder in sites if folder and Path(folder).is_dir())
    grader_dir = Path(__file__).resolve().parent
    return sorted(path for path in paths if path.exists() and not path.is_relative_to(grader_dir))


def bubblewrap_command(area: Path) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bwrap")
    command = [
        bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
    ]
    hidden = _hidden_roots()
    for root in hidden:
        if root.is_dir():
            command += ["--tmpfs", str(root)]
    for path in _needed_paths():
        if any(path == root or root in path.parents for root in hidden):
            command += ["--ro-bind", str(path), str(path)]
    command += ["--bind", str(area), str(area), "--ro-bind", str(area / "boot"), str(area / "boot")]
    return command


@cache
def detect() -> Sandbox:
    """The best isolation this machine allows, tried once per process."""
    if os.environ.get("GRADER_SANDBOX") == "none":
        return Sandbox("none", "turned off with GRADER_SANDBOX=none")
    if not sys.platform.startswith("linux"):
        return Sandbox("none", f"no namespaces on {sys.platform}")
    if shutil.which("bwrap") is None:
        return Sandbox("none", "bubblewrap is not installed; `sudo apt-get install bubblewrap` adds it")
    probe = Path(os.environ.get("TMPDIR", "/tmp"))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="grader-probe-", dir=probe) as area:
        (Path(area) / "boot").mkdir()
        try:
            result = subprocess.run([*bubblewrap_command(Path(area)), "--", "/bin/true"], capture_output=True,
                                    timeout=10, text=True, errors="replace")
        except (OSError, subprocess.SubprocessError) as exc:
            return Sandbox("none", f"bubblewrap could not start: {exc}")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1][:200]
        return Sandbox("none", f"this system does not allow namespaces ({reason})")
    return Sandbox("bubblewrap", "own user, PID, network and mount namespaces; no network")


class AppHost:
    """One app host: imports the learner's module once, then forks an app process per check."""

    def __init__(self, area: Path, sandbox: Sandbox, pump: Pump) -> None:
        self.area, self.sandbox, self.pump = area, sandbox, pump
        self.dead = False
        self.output = Output()
        self._lock = threading.Lock()  # one command at a time on the control socket
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        boot = area / "boot" / "apphost.py"
        env = {key: os.environ[key] for key in _KEPT if key in os.environ}
        env.update(HOME=str(area / "home"), TMPDIR=str(area / "tmp"), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONUNBUFFERED="1", TZ=far_time_zone())
        import site

        if site.ENABLE_USER_SITE and site.USER_SITE and Path(site.USER_SITE).is_dir():
            env["PYTHONUSERBASE"] = site.getuserbase()  # packages from `pip install --user`, HOME aside
        python = [sys.executable, "-B", str(boot), str(theirs.fileno())]
        self._spared: set[int] = set()  # without a sandbox: children this process had before the host
        if sandbox.isolated:
            command = [*bubblewrap_command(area), "--chdir", str(area), "--", *python]
        else:
            become_subreaper()
            self._spared = own_children()
            command = [*python, str(os.getpid())]
        out_read, out_write = os.pipe()
        self.process = subprocess.Popen(
            command, cwd=area, env=env, stdin=subprocess.DEVNULL, stdout=out_write, stderr=out_write,
            pass_fds=(theirs.fileno(),), start_new_session=True,
        )
        register_child(self.process.pid)
        os.close(out_write)
        theirs.close()
        self.pump.add(out_read, self.output.feed)
        self._ready = False
        self.own_databases = False  # each app process's database is its own file (a relative path)

    # -- the control channel ---------------------------------------------------------------

    def _receive(self, deadline: float, doing: str) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(doing)
            try:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    continue
                data = self.sock.recv(MESSAGE_LIMIT)
            except (OSError, ValueError):  # the watchdog killed the host and shut the socket meanwhile
                data = b""
            if not data:
                raise HostProblem(f"the app's process ended while {doing}")
            try:
                message = json.loads(data)
            except (ValueError, RecursionError):
                raise HostProblem(f"the app's process sent something unexpected while {doing}") from None
            if isinstance(message, dict):
                return message
            raise HostProblem(f"the app's process sent something unexpected while {doing}")

    def _command(self, message: dict, fds: list[int], deadline: float, doing: str) -> dict[str, Any]:
        if self.dead:
            raise HostProblem("the app's process was stopped")
        with self._lock:
            try:
                socket.send_fds(self.sock, [json.dumps(message).encode()], fds)
            except OSError:
                raise HostProblem(f"the app's process ended before {doing}") from None
            return self._receive(deadline, doing)

    def wait_ready(self, deadline: float) -> None:
        if not self._ready:
            with self._lock:
                message = self._receive(deadline, "starting")
            if message.get("ready") is not True:
                raise HostProblem("the app's process did not start as expected")
            self._ready = True

    def send_load(self, spec: dict[str, Any]) -> None:
        """Ask for the learner's module to be imported; the host reads it when it is ready."""
        try:
            self.sock.send(json.dumps({"cmd": "load", **spec}).encode())
        except OSError:
            pass  # the host is gone already: receive_load says so

    def receive_load(self, deadline: float) -> str | None:
        """None once the module is imported, or the learner's load error."""
        self.wait_ready(deadline)
        with self._lock:
            answer = self._receive(deadline, "importing your app")
        if answer.get("loaded") is True:
            self.own_databases = answer.get("own_databases") is True
            return None
        if isinstance(answer.get("load_error"), str):
            return answer["load_error"]
        raise HostProblem("the app's process answered the load with something unexpected")

    def start(self, number: int, cwd: Path, env: dict[str, str], sock_path: str, deadline: float,
              **options: Any) -> App:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(128)
        out_read, out_write = os.pipe()
        events_read, events_write = os.pipe()
        app = App(self, number, sock_path)
        try:
            answer = self._command({"cmd": "start", "id": number, "cwd": str(cwd), "env": env, **options},
                                   [listener.fileno(), out_write, events_write], deadline, "starting your app")
        finally:
            listener.close()
            os.close(out_write)
            os.close(events_write)
            self.pump.add(out_read, app.output.feed)
            self.pump.add(events_read, app.events.feed)
        if answer.get("started") != number:
            raise HostProblem("the app's process answered the start with something unexpected")
        return app

    def stop(self, number: int) -> int | None:
        """End one app process; its exit status as the host saw it (None if unknown)."""
        if self.dead:
            return None
        try:
            answer = self._command({"cmd": "stop", "id": number}, [], time.monotonic() + STOP_GRACE,
                                   "stopping your app")
        except (HostProblem, TimeoutError):
            self.kill()
            return None
        status = answer.get("status")
        return status if isinstance(status, int) and not isinstance(status, bool) else None

    def kill(self) -> None:
        """End the host and everything it started; safe to call from any thread, and twice."""
        self.dead = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        unregister_child(self.process.pid)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting for an answer; closed with the object
        except OSError:
            pass
        if not self.sandbox.isolated:
            kill_orphans(self._spared)


class Output:
    """An app process's standard output and error, as the checks may read them.

    Reading never stops (a full pipe would stall the app); beyond `OUTPUT_LIMIT` bytes only
    the count and a tail are kept.
    """

    def __init__(self) -> None:
        self.kept = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.closed = threading.Event()

    def feed(self, data: bytes) -> None:
        if not data:
            self.closed.set()
            return
        self.total += len(data)
        room = OUTPUT_LIMIT - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.tail = (self.tail + data)[-8192:]

    def text(self) -> str:
        return self.kept.decode(errors="replace")

    def last_lines(self, count: int = 12) -> list[str]:
        lines = [line for line in self.tail.decode(errors="replace").splitlines() if line.strip()]
        return [line[:200] for line in lines[-count:]]


class Events:
    """JSON lines from the app process's reporting wrapper (untrusted: used for messages only)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._kept = 0  # bytes of reports parsed so far
        self.closed = False

    def feed(self, data: bytes) -> None:
        with self._changed:
            if not data:
                self.closed = True
            elif self._kept < EVENTS_LIMIT:
                self._buffer += data
                *lines, self._buffer = self._buffer.split(b"\n")
                self._buffer = self._buffer[-EVENT_LINE_LIMIT:]
                for line in lines:
                    if len(line) > EVENT_LINE_LIMIT or self._kept >= EVENTS_LIMIT:
                        continue  # no report of ours is that long: not worth parsing
                    self._kept += len(line)
                    try:
                        event = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(event, dict) and isinstance(event.get("event"), str):
                        self._events.append(event)
            self._changed.notify_all()

    def wait_closed(self, timeout: float) -> bool:
        """Whether the pipe closed (the process and all its children are gone) within `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self.closed, timeout)

    def wait_for(self, predicate, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._changed.wait(left)


class App:
    """One check's app process: where to reach it, its output and its reports."""

    def __init__(self, host: AppHost, number: int, sock_path: str) -> None:
        self.host, self.number, self.sock_path = host, number, sock_path
        self.output = Output()
        self.events = Events()
        self.exit_status: int | None = None
        self.stopped = False
        self.database: Path | None = None  # this app's SQLite file, in the run's folder

    def wait_exit(self, timeout: float) -> int | None:
        """Wait until the process ends by itself (its reports pipe closes); its exit status,
        or None if it is still running after `timeout` seconds (it is then stopped)."""
        ended = self.events.wait_closed(timeout)
        status = self.stop()
        return status if ended else None

    def stop(self) -> int | None:
        if not self.stopped:
            self.stopped = True
            self.exit_status = self.host.stop(self.number)
        return self.exit_status

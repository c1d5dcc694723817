"""The processes that run learner code, and making sure none outlives a run.

A worker is either spawned as a new interpreter (`SpawnedWorker`, the path of `grader check`)
or forked from a warm `Zygote` (`grader watch`). Either way it leads its own process group,
which the runner kills; processes that escape the group (a new session) are re-parented to
the grader, which is a child subreaper, and `kill_orphans` ends them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Protocol

SCRUBBED_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONSAFEPATH")


def worker_environment() -> dict[str, str]:
    """The environment of every worker: the learner's, minus what would reconfigure pytest."""
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        PYTHONDONTWRITEBYTECODE="1",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        PYTHONUNBUFFERED="1",
    )
    return env


LIVE_WORKERS: set[int] = set()  # pids of workers running now, in any thread of this process
WORKERS_LOCK = threading.Lock()  # a worker being started is registered before anyone scans


def become_subreaper() -> None:
    """Make this process adopt the orphans of its workers (Linux), so none can escape the kill."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def kill_orphans() -> None:
    """Kill and reap processes a worker left behind that were re-parented to us.

    A learner's code may start processes in a new session (out of the worker's process
    group); as our adopted children they are found here and ended.
    """
    with WORKERS_LOCK:
        _kill_orphans_locked(os.getpid())


def _kill_orphans_locked(me: int) -> None:
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        if parent == me and pid not in LIVE_WORKERS:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


class Worker(Protocol):
    """A running worker: its pid (also its process group) and a way to learn its exit status."""

    pid: int

    def wait(self) -> int: ...


class SpawnedWorker:
    """A worker started as a new interpreter: simple, and the cold path for `grader check`."""

    def __init__(self, spec: dict, workdir: Path, log: Path, env: dict[str, str]) -> None:
        with log.open("wb") as log_handle:
            self.process = subprocess.Popen(
                [sys.executable, "-B", "-m", "grader.worker", json.dumps(spec)],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log_handle,
                stderr=subprocess.STDOUT, pass_fds=(spec["event_fd"],), start_new_session=True,
            )
        self.pid = self.process.pid

    def wait(self) -> int:
        return self.process.wait()


class ForkedWorker:
    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.exit_status(self.pid)
        return self.returncode


class Zygote:
    """A warm process that forks ready-made workers (see `grader.zygote`); for `grader watch`."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.home = tempfile.mkdtemp(prefix="grader-zygote-")
        with WORKERS_LOCK:
            self.process = subprocess.Popen(
                [sys.executable, "-B", "-m", "grader.zygote", str(theirs.fileno())],
                cwd=self.home, env=env or worker_environment(), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
            LIVE_WORKERS.add(self.process.pid)
        theirs.close()
        if not self._receive().get("ready"):
            raise RuntimeError("the warm worker did not start")

    def _receive(self) -> dict:
        message = self.sock.recv(65536)
        if not message:
            raise RuntimeError("the warm worker ended unexpectedly")
        return json.loads(message)

    def launch(self, spec: dict, workdir: Path, log: Path, env: dict[str, str]) -> ForkedWorker:
        request = {**spec, "workdir": str(workdir), "log": str(log), "env": env}
        socket.send_fds(self.sock, [json.dumps(request).encode()], [spec["event_fd"]])
        return ForkedWorker(self, self._receive()["pid"])

    def exit_status(self, pid: int) -> int:
        message = self._receive()
        if message.get("pid") != pid or "returncode" not in message:
            raise RuntimeError(f"unexpected message from the warm worker: {message}")
        return message["returncode"]

    def close(self) -> None:
        self.sock.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        LIVE_WORKERS.discard(self.process.pid)
        shutil.rmtree(self.home, ignore_errors=True)

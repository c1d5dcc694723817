"""Processes and pipes of a run: reading the app's output, and leaving nothing behind.

`Pump` is one thread that drains every pipe the app writes to (its output, its reports), so
the app never stalls on a full pipe and no thread ever blocks on a descriptor that another
closes. Without a sandbox the runner is a child subreaper (Linux), so processes that the app
starts in a new session are adopted by the runner and `kill_orphans` ends them; with one,
the PID namespace does that.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from collections.abc import Callable
from pathlib import Path

_CHILDREN: set[int] = set()  # hosts running now: the orphan sweep leaves them alone
_CHILDREN_LOCK = threading.Lock()


def register_child(pid: int) -> None:
    with _CHILDREN_LOCK:
        _CHILDREN.add(pid)


def unregister_child(pid: int) -> None:
    with _CHILDREN_LOCK:
        _CHILDREN.discard(pid)


def become_subreaper() -> None:
    """Adopt the orphans of the processes we start (Linux), so none can outlive the run."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def own_children() -> set[int]:
    """The processes whose parent is this one, direct children and adopted orphans alike."""
    me, found = str(os.getpid()).encode(), set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            # Bytes: a process may give itself any name, valid UTF-8 or not, ")" included.
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            if len(fields) > 1 and fields[1] == me:
                found.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def kill_orphans(spared: set[int] | frozenset[int] = frozenset()) -> None:
    """Kill and reap adopted processes that are not a running host, nor one of `spared`: the
    children this process already had when the host started, which other code here owns (a
    notebook's kernel or a test's browser)."""
    with _CHILDREN_LOCK:
        for pid in own_children() - _CHILDREN - set(spared):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass


class Pump(threading.Thread):
    """Reads every registered pipe until its end, handing each chunk to that pipe's sink.

    A sink is called with b"" once, at the end. `close()` stops the thread and closes the
    pipes still open; sinks must be quick (they only store).
    """

    def __init__(self) -> None:
        super().__init__(name="grader-pump", daemon=True)
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._pending: list[tuple[int, Callable[[bytes], None]]] = []
        self._lock = threading.Lock()
        self._stopping = False
        self.start()

    def add(self, fd: int, sink: Callable[[bytes], None]) -> None:
        with self._lock:
            self._pending.append((fd, sink))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):
            pass

    def run(self) -> None:
        while True:
            with self._lock:
                for fd, sink in self._pending:
                    self._selector.register(fd, selectors.EVENT_READ, sink)
                self._pending.clear()
                if self._stopping:
                    break
            for key, _ in self._selector.select():
                if key.data is None:
                    os.read(self._wake_read, 4096)
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                try:
                    key.data(data)
                except Exception:  # a sink that chokes on what the app sent loses that chunk, never the pump
                    pass
                if not data:
                    self._selector.unregister(key.fd)
                    os.close(key.fd)
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                key.data(b"")
            os.close(key.fd)
        self._selector.close()
        os.close(self._wake_write)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        self.join(timeout=5)

"""A warm worker for `grader watch`: imports the heavy libraries once, then forks a fresh
worker for every re-check.

The runner talks to it over a Unix socket pair (SOCK_SEQPACKET, so each message arrives
whole). For each run the runner sends a spec together with the write end of a new event pipe
(`socket.send_fds`); the zygote forks, the child becomes an ordinary worker (`worker.run`) in
its own session, and the zygote reports the child's pid, then its exit status. The zygote
itself never imports learner code, so every re-check starts from a clean process that already
has pytest, FastAPI, SQLAlchemy and Pydantic in memory.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import socket
import sys

PRELOAD = (
    "pytest", "_pytest.python", "_pytest.fixtures", "fastapi", "fastapi.testclient", "fastapi.routing",
    "starlette.testclient", "anyio", "httpx", "pydantic", "email_validator", "sqlalchemy",
    "sqlalchemy.orm", "sqlalchemy.dialects.sqlite", "grader.harness", "grader.worker",
)
MESSAGE_LIMIT = 1 << 20


def _send(sock: socket.socket, **message: object) -> None:
    sock.send(json.dumps(message).encode())


def _child(sock: socket.socket, spec: dict, event_fd: int) -> None:
    """Become a worker: own session, own folder, output to the log, then run the checks."""
    from grader import worker

    try:
        sock.close()
        os.setsid()
        os.chdir(spec["workdir"])
        os.environ.update(spec["env"])
        log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        spec["event_fd"] = event_fd
        worker.run(spec)
    finally:
        os._exit(70)


def _modules_to_preload() -> list[str]:
    from _pytest.config import default_plugins  # pytest's own plugins, imported by every pytest.main

    return [*PRELOAD, *(f"_pytest.{name}" for name in default_plugins)]


def serve(sock: socket.socket) -> None:
    for name in _modules_to_preload():
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a later chapter's library that is not installed: the worker imports what it needs
    # Park everything imported so far outside the garbage collector's reach: each forked
    # worker's collections then walk only the learner's objects, and pages stay shared.
    gc.collect()
    gc.freeze()
    _send(sock, ready=True)
    while True:
        message, fds, _flags, _address = socket.recv_fds(sock, MESSAGE_LIMIT, 1)
        if not message:
            return  # the runner is gone
        spec, event_fd = json.loads(message), fds[0]
        pid = os.fork()
        if pid == 0:
            _child(sock, spec, event_fd)
        os.close(event_fd)
        _send(sock, pid=pid)
        _, status = os.waitpid(pid, 0)
        _send(sock, pid=pid, returncode=os.waitstatus_to_exitcode(status))


def main() -> None:
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()

"""What the worker does before any learner code runs, to contain it and to notice tampering.

- `cap_resources`: memory (address space), file size and core dumps are capped, so a memory
  hog or endless output fails one check instead of hurting the machine.
- `block_network`: connections and name lookups beyond loopback are refused with a clear
  message; the checks run offline.
- `snapshot` / `changed_since`: the identities of the functions the grading depends on, taken
  before the learner's code runs and compared after, so monkeypatching is caught.
"""

from __future__ import annotations

import importlib
import resource

MEMORY_LIMIT = 3 * 1024**3  # bytes of address space; a memory hog fails its check instead of the machine
FILE_SIZE_LIMIT = 256 * 1024**2  # bytes; endless output cannot fill the disk


GUARDED_MODULES = (
    "grader.harness", "grader.worker", "grader.guards",
    "_pytest.runner", "_pytest.reports", "_pytest.python", "_pytest.main", "_pytest.fixtures", "_pytest.outcomes",
    "pluggy._callers", "pluggy._hooks", "pluggy._manager",
    "builtins", "json", "os",
)


def snapshot() -> dict[str, int]:
    """The identity of every function and class member the grading depends on.

    Compared after the learner's code has run: a learner's module that monkeypatches the
    grader, pytest or pluggy (to force a pass) changes an identity here.
    """
    def behaviour(value: object) -> bool:  # code, not state such as pytest's own flags
        return callable(value) or isinstance(value, (property, staticmethod, classmethod))

    table: dict[str, int] = {}
    for name in GUARDED_MODULES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if not behaviour(value):
                continue
            table[f"{name}.{attribute}"] = id(value)
            if isinstance(value, type) and value.__module__ == name:
                for member_name, member in vars(value).items():
                    if behaviour(member):
                        table[f"{name}.{attribute}.{member_name}"] = id(member)
    return table


def changed_since(before: dict[str, int]) -> list[str]:
    after = snapshot()
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def block_network() -> None:
    """Refuse connections beyond this machine: checks must not depend on, or reach, the network."""
    import ipaddress
    import socket

    def local(host: object) -> bool:
        if not isinstance(host, str) or host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def refuse(host: object, port: object = "") -> OSError:
        return ConnectionRefusedError(
            f"the grader blocks network access while checking ({host}:{port}); checks run offline"
        )

    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def connect(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and not local(address[0]):
            raise refuse(*address[:2])
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and not local(address[0]):
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and not local(host if isinstance(host, str) else host.decode()):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, f"{host}: name lookups are blocked while checking") from None
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo


def cap_resources() -> None:
    for limit, value in [(resource.RLIMIT_AS, MEMORY_LIMIT), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                         (resource.RLIMIT_CORE, 0)]:
        soft, hard = resource.getrlimit(limit)
        wanted = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(limit, (wanted, wanted))
        except (ValueError, OSError):
            pass  # a platform without this limit (macOS has no RLIMIT_AS): grade without it

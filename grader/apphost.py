"""The app host: the only grader code that runs beside a learner's app, on the untrusted side.

This file is copied on its own into the sandbox and run there as a script; it imports nothing
from the grader, and nothing it says is trusted. The checker (`grader.appserver`) sends it
commands over a Unix socket pair (SOCK_SEQPACKET: one JSON message each) and it answers:

    ← {"ready": true}                  once the libraries are imported
    → {"cmd": "load", ...}            ← {"loaded": true, "own_databases": ...} or {"load_error": "..."}
    → {"cmd": "start", "id": N, ...}  ← {"started": N, "pid": ...}   (three fds come with it)
    → {"cmd": "stop", "id": N}        ← {"stopped": N, "status": ...}

`load` imports the learner's module once, here, then does the set-up every app process would
repeat (the tables in a template file, the mappers, uvicorn's logging and imports), and
freezes the heap. `start` forks a fresh app process for one check: it moves into that check's
folder, gives the engine an SQLite file there with fresh tables (a copy of the template, or
made anew), and serves the app with uvicorn on the listening socket that the checker created
and passed in. Its output goes to a
pipe the checker reads; crashes inside requests are reported on a second pipe, as JSON lines
numbered by the request's place in the order of arrival (the checker sends one request at a
time, so it numbers them alike), so the checker can name the file and line. Nothing in a
request marks it as the grader's.

A learner's code can rewrite or ignore all of this. That costs them their own grade and
nothing else: the verdict is decided in a process this one cannot see.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shutil
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

# Imported before the learner's module, once per host, so that no app process pays for them:
# what FastAPI apps import, and what uvicorn and anyio import lazily on a first request.
PRELOAD = (
    "fastapi", "fastapi.routing", "fastapi.openapi.utils", "starlette.routing", "pydantic",
    "pydantic._internal._dataclasses", "email_validator", "sqlalchemy", "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite", "uvicorn", "uvicorn.config", "uvicorn.server",
    "uvicorn.protocols.http.h11_impl", "uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.loops.asyncio",
    "anyio._backends._asyncio", "anyio.streams.memory", "anyio.streams.stapled", "anyio.streams.tls",
    "uvloop", "uvicorn.loops.uvloop", "concurrent.futures.thread", "fastapi.telemetry._runtime",
)
MESSAGE_LIMIT = 1 << 20
LIMITS = {
    "RLIMIT_AS": 3 * 1024**3,  # bytes of address space: a memory hog fails its request, not the machine
    "RLIMIT_FSIZE": 256 * 1024**2,  # bytes per file: endless output cannot fill the disk
    "RLIMIT_CORE": 0,
}


def send(sock: socket.socket, **message: Any) -> None:
    sock.send(json.dumps(message, default=str).encode()[: MESSAGE_LIMIT - 1])


# --- Describing the learner's failures ------------------------------------------------------


def learner_frames(tb: Any, home: Path) -> list[str]:
    """The traceback lines that point into the learner's own files, innermost last."""
    lines = []
    for frame in traceback.extract_tb(tb):
        try:
            path = Path(frame.filename).resolve()
        except (OSError, ValueError):
            continue
        if home in path.parents:
            code = (frame.line or "").strip()
            lines.append(f"    {path.relative_to(home)}, line {frame.lineno}, in {frame.name}: {code}")
    return lines[-6:]


def first_line(exc: BaseException, limit: int = 300) -> str:
    try:
        text = str(exc)
    except Exception:  # a learner's exception whose __str__ fails
        text = "(its message could not be shown)"
    return ((text.strip().splitlines() or [""])[0])[:limit]


def describe_load_failure(exc: BaseException, module: str, home: Path) -> str:
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename or '?'}, line {exc.lineno}"
        try:
            where = f"{Path(exc.filename or '').resolve().relative_to(home)}, line {exc.lineno}"
        except ValueError:
            pass
        text = (exc.text or "").rstrip("\n")
        caret = ""
        if text and exc.offset:
            stripped = text.lstrip()
            caret = "\n      " + " " * max(exc.offset - 1 - (len(text) - len(stripped)), 0) + "^"
            text = stripped
        shown = f"\n      {text}{caret}" if text else ""
        return f"{type(exc).__name__} in {where}: {exc.msg}{shown}"
    frames = learner_frames(exc.__traceback__, home)
    where = ("\n  where (innermost last):\n" + "\n".join(frames)) if frames else ""
    if isinstance(exc, SystemExit):
        return f"Your code called sys.exit({exc.code!r}) while {module} was being imported.{where}"
    if isinstance(exc, KeyboardInterrupt):
        return f"Importing {module} was interrupted (KeyboardInterrupt).{where}"
    return f"Importing {module} raised {type(exc).__name__}: {first_line(exc)}{where}"


def wrong_kind(name: str, value: Any, wanted: str, where: str) -> str:
    if isinstance(value, type):
        what = f"the class {value.__name__} itself"
        fix = f"; create one: `{name} = {value.__name__}(...)`" if wanted != "the declarative base class" else ""
    elif callable(value):
        what = f"a function ({getattr(value, '__name__', '?')})"
        fix = f"; the checks need the {wanted} it returns, so call it"
    else:
        what = f"a {type(value).__name__}"
        fix = ""
    return f"`{name}` in {where} is {what}; the checks need {wanted}{fix}."


PURPOSES = {"app": "the FastAPI application", "engine": "the database engine",
            "base": "the declarative base whose tables every check recreates",
            "secret_key": "the key that signs access tokens"}


class ImportFailed(Exception):
    """Importing a module named in `names` (`module:attribute`) raised: the learner's error."""

    def __init__(self, module: str, error: BaseException) -> None:
        super().__init__(module)
        self.module, self.error = module, error


def _shown(module: Any, home: Path | None) -> str:
    """A module as the learner knows it: its file, relative to their folder where possible."""
    try:
        return str(Path(module.__file__).resolve().relative_to(home)) if home else module.__file__
    except (TypeError, ValueError, AttributeError):
        return module.__name__


def _owner(loaded: Any, role: str, name: str, where: str, home: Path | None) -> tuple[Any, str, str]:
    """Where a name lives: `attribute` in the app's module, or `module:attribute` anywhere in
    the learner's package (Chapter 3 moves the engine and the base out of tracker.main)."""
    if ":" not in name:
        return loaded, name, where
    module_name, attribute = name.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            path = module_name.replace(".", "/")
            raise ValueError(f"The checks look for {PURPOSES.get(role, role)} as `{attribute}` in the module "
                             f"{module_name} ({path}.py, or {path}/__init__.py), and your folder has no such "
                             "module. This chapter's statement says where each name lives.") from None
        raise ImportFailed(module_name, exc) from None
    except BaseException as exc:  # the learner's module may raise anything, SystemExit included
        raise ImportFailed(module_name, exc) from None
    return module, attribute, _shown(module, home)


def find_names(loaded: Any, names: dict[str, str], where: str, home: Path | None = None) -> dict[str, Any]:
    """The objects the chapter's checks rely on, or a ValueError naming what is wrong.

    A name is an attribute of the app's module (`engine`), or `module:attribute` (`tracker.
    shared.database:engine`), imported here. ImportFailed: that module raised on import.
    """
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Engine

    found, shown = {}, {}
    for role, name in names.items():
        owner, attribute, place = _owner(loaded, role, name, where, home)
        if not hasattr(owner, attribute):
            keep = ("Keep this name from the starter code." if owner is loaded
                    else "Define it there, or import it there, as this chapter's statement says.")
            raise ValueError(f"{place} has no `{attribute}` ({PURPOSES.get(role, role)}). {keep}")
        found[role], shown[role] = getattr(owner, attribute), (attribute, place)
    kinds = {"app": (lambda value: callable(value) and not isinstance(value, type), "an application, such as `FastAPI()`"),
             "engine": (lambda value: isinstance(value, Engine), "the Engine that create_engine() returns"),
             "base": (lambda value: isinstance(getattr(value, "metadata", None), MetaData),
                      "the declarative base class (with its .metadata)")}
    for role, (fits, wanted) in kinds.items():
        if role in found and not fits(found[role]):
            attribute, place = shown[role]
            raise ValueError(wrong_kind(attribute, found[role], wanted, place))
    return found


# --- One app process per check ----------------------------------------------------------------


class ReportingApp:
    """ASGI wrapper that reports an exception escaping the app, tagged with the request's id.

    Starlette answers 500 before the exception reaches this wrapper; the checker waits a
    moment for the report after a 500.
    """

    def __init__(self, app: Any, events: int, home: Path) -> None:  # app: set before serving
        self.app, self.events, self.home = app, events, home
        self.requests = 0

    def report(self, **event: Any) -> None:
        data = (json.dumps(event, default=str) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.events, data):]
        except OSError:
            pass

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = ""
        if isinstance(scope, dict) and scope.get("type") == "lifespan":
            send = self._watch_startup(send)
        elif isinstance(scope, dict) and scope.get("type") == "http":
            self.requests += 1
            request = str(self.requests)
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            self.report(event="crash", request=request, type=type(exc).__name__,
                        exit_code=repr(exc.code) if isinstance(exc, SystemExit) else None,
                        message=first_line(exc), frames=learner_frames(exc.__traceback__, self.home))
            raise

    def _watch_startup(self, send: Any) -> Any:
        """Tell the checker when the app's startup (its lifespan) has finished."""

        async def watched(message: Any) -> None:
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "lifespan.startup.complete":
                self.report(event="started")
            elif kind == "lifespan.startup.failed":
                self.report(event="startup-failed", message=str(message.get("message", ""))[:2000])
            await send(message)

        return watched


def relay(port: int, target: str) -> None:
    """Listen on 127.0.0.1:`port` and pass each connection on to the Unix socket `target`.

    The app has no network of its own; this is how it reaches a service the checker runs (an
    outside service's stub, an SMTP server, an error tracker) at the address a real
    deployment would configure.
    """
    import threading

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def forget_learner_modules(package: str, home: Path) -> None:
    """Drop the learner's modules that this process inherited from the host, so that the next
    import runs their code again, under this process's environment."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        try:
            inside = bool(file) and Path(file).resolve().is_relative_to(home)
        except (OSError, ValueError):
            inside = False
        if name == package or name.startswith(package + ".") or inside:
            del sys.modules[name]


def serve_one(spec: dict, objects: dict[str, Any], home: Path, fds: list[int]) -> None:
    """In the forked child: become this check's app process, then serve until killed.

    With `exec`, run that command instead (a learner's own tests, say). With `import`, import
    the learner's module here, under this process's own environment (settings read at import
    time see it), instead of using the host's import.
    """
    listener, output, events = fds
    os.setsid()
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.chdir(spec["cwd"])
    os.environ.update(spec.get("env", {}))
    reporter = ReportingApp(None, events, home)
    for forward in spec.get("forward", []):
        relay(int(forward["port"]), str(forward["socket"]))
    if spec.get("exec"):
        os.close(listener)
        try:
            os.execvp(spec["exec"][0], spec["exec"])
        except OSError as exc:
            reporter.report(event="exec-error", message=str(exc))
            os._exit(127)
    if spec.get("import"):
        home = Path(spec["load"]["home"]).resolve()
        reporter.home = home
        forget_learner_modules(spec["load"]["package"], home)  # the host's import must not be reused
        loaded = load_module(spec["load"], home)
        if isinstance(loaded, str):
            reporter.report(event="load-error", message=loaded)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(3)
        objects = loaded
    reporter.app = objects["app"]
    engine, base = objects.get("engine"), objects.get("base")
    database = None
    if engine is not None and base is not None:
        try:
            engine.dispose(close=False)  # connections opened before the fork belong to the parent
            database = own_database(engine, objects.get("sqlite_file"), Path(spec["cwd"]) / "database.sqlite")
            template = objects.get("tables")
            if template is not None and not spec.get("import"):  # a template means an SQLite file
                shutil.copyfile(template, database)  # the host made these tables the same way, once
            else:
                base.metadata.drop_all(engine)
                base.metadata.create_all(engine)
        except BaseException as exc:
            frames = learner_frames(exc.__traceback__, home)
            reporter.report(event="reset-error", type=type(exc).__name__, message=first_line(exc), frames=frames)
            os._exit(3)
    reporter.report(event="serving", database=database)

    import uvicorn

    sock = socket.socket(fileno=listener)
    # uvicorn's logging set-up walks every logger (SQLAlchemy makes many); the host has done it
    # already after the import, unless this process imported the learner's module again.
    kept = {"log_config": None} if objects.get("logging_ready") and not spec.get("import") else {}
    config = uvicorn.Config(reporter, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=0, **kept)
    uvicorn.Server(config).run(sockets=[sock])
    os._exit(0)


def load_module(spec: dict[str, Any], home: Path) -> dict[str, Any] | str:
    """Import the learner's module and find the names the checks use; or the load error."""
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    where = spec["module"].replace(".", "/") + ".py"
    try:
        loaded = importlib.import_module(spec["module"])
        origin = Path(getattr(loaded, "__file__", None) or "").resolve()
        if home not in origin.parents:
            raise ValueError(f"{spec['module']} was imported from {origin}, not from your folder. Another package "
                             f"named {spec['package']!r} is installed; uninstall or rename it.")
        objects = find_names(loaded, spec["names"], where, home)
    except ValueError as exc:
        return str(exc)
    except ImportFailed as failed:
        return describe_load_failure(failed.error, failed.module, home)
    except BaseException as exc:  # the learner's module may raise anything, SystemExit included
        return describe_load_failure(exc, spec["module"], home)
    objects["sqlite_file"] = sqlite_file(objects.get("engine"))
    return objects


def contain(parent: int) -> None:
    """Caps that no code started later can raise: memory, file size, core dumps. Without a
    sandbox, also die with the checker (with one, bubblewrap's --die-with-parent does it)."""
    import resource

    for limit, value in LIMITS.items():
        kind = getattr(resource, limit, None)
        if kind is None:
            continue
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass  # a platform without this limit (macOS has no RLIMIT_AS): run without it
    if parent and sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the checker died before the line above took effect
            os._exit(0)


def sqlite_file(engine: Any) -> str | None:
    """The file an SQLite engine opens, exactly as it passes it to sqlite3.connect()."""
    if engine is None or engine.url.get_backend_name() != "sqlite":
        return None
    args, options = engine.dialect.create_connect_args(engine.url)
    name = args[0] if args else options.get("database")
    if not isinstance(name, str) or name in ("", ":memory:") or "mode=memory" in name:
        return None
    return name


def own_databases(engine: Any) -> bool:
    """Whether every app process gets a database of its own (SQLite: see `own_database`), so
    that the checker may start the next check's app while a check runs."""
    return engine is not None and engine.url.get_backend_name() == "sqlite"


def table_template(engine: Any, base: Any, name: str | None, target: Path) -> str | None:
    """In the host, once: the fresh tables that every app process would otherwise create
    (drop_all, then create_all, on a new SQLite file), made in `target` for each to copy.

    The same statements run, with the learner's own events, in a file of the same kind, so a
    copy is what an app process would have made itself, in a millisecond instead of tens.
    None (each app process makes its own tables, and reports what fails) when the engine is
    not a file-backed SQLite one or making the tables fails here.
    """
    if name is None:
        return None
    import sqlite3
    import sqlite3.dbapi2

    real = sqlite3.dbapi2.connect
    try:
        engine.dispose()  # the import's own connections, to its own file
        own_database(engine, name, target)
        base.metadata.drop_all(engine)
        base.metadata.create_all(engine)
        engine.dispose()  # closed: the file is complete on disk, journal and WAL folded in
        return str(target)
    except BaseException:
        try:
            engine.dispose()
        except BaseException:
            pass
        target.unlink(missing_ok=True)
        return None
    finally:
        sqlite3.dbapi2.connect = sqlite3.connect = real


def own_database(engine: Any, name: str | None, target: Path) -> str | None:
    """Point this app process's SQLite file at `target`, in the check's own folder.

    SQLAlchemy fixes a file's absolute path when the engine is created (here: once, in the
    host), so every app process would share one file. Redirecting the engine's file keeps
    each check's data its own, and keeps the app away from any database outside the run's
    folder (the learner's own `tracker.db` included). `name` is the file as the engine opens
    it, found in the host (a relative path is made absolute against the host's folder).
    """
    if name is None:
        return None
    import sqlite3
    import sqlite3.dbapi2

    real = sqlite3.dbapi2.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        if args and args[0] == name:
            args = (str(target), *args[1:])
            kwargs.pop("uri", None)
        elif kwargs.get("database") == name:
            kwargs["database"] = str(target)
            kwargs.pop("uri", None)
        return real(*args, **kwargs)

    sqlite3.dbapi2.connect = sqlite3.connect = connect
    return str(target)


def configure_orm(limit: float = 2.0) -> None:
    """Configure SQLAlchemy's mappers once, here, rather than in every app process on its first
    query. Tried first in a throwaway child: a mapping that fails (or hangs) is left for each
    app process to meet, so the learner reads SQLAlchemy's own error, not its later summary."""
    import time

    try:
        from sqlalchemy.orm import configure_mappers
    except ImportError:
        return
    pid = os.fork()
    if pid == 0:
        try:
            configure_mappers()
        except BaseException:
            os._exit(1)
        os._exit(0)
    deadline = time.monotonic() + limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.002)
    if os.waitstatus_to_exitcode(status) == 0:
        try:
            configure_mappers()
        except BaseException:
            pass


def warm_up(app: Any) -> bool:
    """Do once, before the app processes fork, the library work each would repeat on its
    first start and first requests: uvicorn's logging set-up and imports, and the reading of
    each endpoint's source that FastAPI does on a route's first request (the tokenizer's
    patterns alone take a CPU-hundredth to compile). True once uvicorn's logging is set up."""
    logging_ready = False
    try:
        import uvicorn

        config = uvicorn.Config(app, lifespan="on")  # sets up uvicorn's logging, as each app's would
        logging_ready = True
        config.load()
    except Exception:
        pass  # the app process will meet the same problem and report it
    try:
        import fastapi.routing

        extract = getattr(fastapi.routing, "_extract_endpoint_context", None)  # FastAPI's own cache
        for route in getattr(app, "routes", None) or ():
            call = getattr(getattr(route, "dependant", None), "call", None)
            if extract is not None and call is not None:
                extract(call)
    except Exception:
        pass
    return logging_ready


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    contain(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    send(control, ready=True)
    objects: dict[str, Any] = {}
    home = Path(".")
    children: dict[int, int] = {}
    relayed: set[int] = set()
    while True:
        message, fds, _flags, _address = socket.recv_fds(control, MESSAGE_LIMIT, 3)
        if not message:
            os._exit(0)  # the checker is gone
        spec = json.loads(message)
        command = spec.get("cmd")
        if command == "load":
            for service in spec.get("services", []):  # once per host: its apps share its network
                if service["port"] not in relayed:
                    try:
                        relay(int(service["port"]), str(service["socket"]))
                    except OSError as exc:  # without a network namespace of its own, the port may be taken
                        print(f"grader: cannot listen on 127.0.0.1:{service['port']} for the checks' "
                              f"outside service: {exc}", file=sys.stderr, flush=True)
                    relayed.add(service["port"])
            home = Path(spec["home"]).resolve()
            os.chdir(spec["cwd"])
            os.environ.update(spec.get("environment", {}))  # the chapter's settings, read at import
            loaded = load_module(spec, home)
            if isinstance(loaded, str):
                send(control, load_error=loaded)
                continue
            objects = loaded
            send(control, loaded=True, own_databases=own_databases(objects.get("engine")))
            if objects.get("base") is not None:  # None unless the engine opens an SQLite file
                objects["tables"] = table_template(objects.get("engine"), objects["base"], objects.get("sqlite_file"),
                                                   Path(spec["cwd"]).resolve() / ".grader-tables.sqlite")
            configure_orm()
            objects["logging_ready"] = warm_up(objects["app"])
            gc.freeze()  # what the host made stays put: no app process's collector copies its pages
        elif command == "start":
            pid = os.fork()
            if pid == 0:
                control.close()
                try:
                    serve_one(spec, objects, home, fds)
                finally:
                    os._exit(70)
            for fd in fds:
                os.close(fd)
            children[spec["id"]] = pid
            send(control, started=spec["id"], pid=pid)
        elif command == "stop":
            pid = children.pop(spec["id"], None)
            status = None
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                _, raw = os.waitpid(pid, 0)
                status = os.waitstatus_to_exitcode(raw)
            send(control, stopped=spec["id"], status=status)


if __name__ == "__main__":
    main()

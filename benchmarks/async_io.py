"""Three ways for an endpoint to call a slow outside service, measured on real servers.

    python benchmarks/async_io.py [--delay 0.2] [--levels 1,10,40,80] [--trap-levels 1,10,40] [--png FILE]

Two uvicorn servers start on 127.0.0.1, each in a process of its own on a free port: a stub
"outside service" whose GET /slow answers after a known delay, and an API with three versions
of one endpoint that calls it:

    /trap     (a) async def with a blocking httpx.get inside: the trap
    /thread   (b) plain def with a sync httpx.Client: FastAPI runs it in its thread pool
    /async    (c) async def with one httpx.AsyncClient for the whole app, made in the lifespan

At each concurrency level, that many users (each an httpx.AsyncClient of its own) send one
request at once to each version ((a) only up to 40 users: it serves one request at a time, so
more users only take longer to show the same). The table gives the throughput (requests per second), the
latency of a request (median and 95th percentile) and the API process's CPU time per request.
Then come the throughput of (c) over that of (a), and how long a cheap GET /ping on the same
server waits while (a), then (c), serves a burst.

Chapter 4's walk-through (book/chapter-4/async.ipynb) imports this module: it shows the API's
code from here, runs the same measurement, and serves its own small apps with `serving()`.
The servers run uvicorn's pure-Python stack (asyncio and h11), so the numbers do not depend
on whether uvloop or httptools happen to be installed.
"""

import argparse
import asyncio
import io
import json
import logging
import math
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DELAY = 0.2  # seconds the outside service takes to answer GET /slow
LEVELS = (1, 10, 40, 80)  # users sending a request at once
# (a) answers one request at a time, so a burst of N users takes N calls to the service: with
# 80 users, 20 s more to show what 40 users already show.
TRAP_LEVELS = (1, 10, 40)
RATIO_LEVEL = 40  # where (c) is compared with (a): the thread pool's size
VARIANTS = {
    "trap": "(a) async def, blocking httpx.get",
    "thread": "(b) def, sync httpx.Client",
    "async": "(c) async def, shared AsyncClient",
}
# A hung service must not hang us: no call to it waits more than 2 s for anything.
TIMEOUT = httpx.Timeout(2.0)
# httpx's defaults, written out: up to 100 connections to the service at once, 20 kept open.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


# The outside service: a stub with a known delay, and two ways to misbehave.

def create_service(delay: float = DELAY) -> Starlette:
    """GET /slow answers after `delay` seconds; /fail answers 500 at once; /hang never answers
    (it waits until the caller hangs up)."""

    async def slow(request):
        await asyncio.sleep(delay)
        return JSONResponse({"answer": 42})

    async def fail(request):
        return JSONResponse({"error": "something broke"}, status_code=500)

    async def hang(request):
        while not await request.is_disconnected():
            await asyncio.sleep(0.05)
        return Response(status_code=204)  # nobody is left to read it

    return Starlette(routes=[Route("/slow", slow), Route("/fail", fail), Route("/hang", hang)])


# The API: one endpoint, three ways.

@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs once: the code before `yield` at start-up, the code after it at shutdown. Every
    request shares the clients made here, and their open connections to the service."""
    if tokens := getattr(app.state, "thread_tokens", None):
        anyio.to_thread.current_default_thread_limiter().total_tokens = tokens
    url = app.state.service_url
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=LIMITS) as client:
        app.state.client = client
        with httpx.Client(base_url=url, timeout=TIMEOUT, limits=LIMITS) as sync_client:  # for (b)
            app.state.sync_client = sync_client
            yield
    # Leaving the `with` blocks has closed both clients and their connections.


async def get_client(request: Request) -> httpx.AsyncClient:
    """The app's shared client. `async def`: a `def` dependency would cost a trip to the
    thread pool on every request, for nothing."""
    return request.app.state.client


ServiceClient = Annotated[httpx.AsyncClient, Depends(get_client)]
router = APIRouter()


@router.get("/trap")
async def trap(request: Request):
    """(a) A blocking call inside `async def`: the whole event loop waits with it."""
    # ruff's flake8-async rules catch this one (ASYNC210); here it is the point, so it stays.
    response = httpx.get(f"{request.app.state.service_url}/slow", timeout=TIMEOUT)  # noqa: ASYNC210
    return response.json()


@router.get("/thread")
def thread(request: Request):
    """(b) Plain `def`: FastAPI runs it in a worker thread, which may block."""
    response = request.app.state.sync_client.get("/slow")
    return response.json()


@router.get("/async")
async def call_async(client: ServiceClient):
    """(c) `async def` awaiting the shared client: the event loop serves others meanwhile."""
    response = await client.get("/slow")
    return response.json()


@router.get("/ping")
async def ping():
    return {"pong": True}


@router.get("/sync-ping")
def sync_ping():
    """A `def` endpoint that does nothing: it stands for any `def` (a database query, say),
    which needs a worker thread before it can start."""
    return {"pong": True}


@router.get("/stats")
async def stats():
    """The thread pool's limiter, the process's threads, and the CPU time it has used."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    return {"total_tokens": limiter.total_tokens, "borrowed_tokens": limiter.borrowed_tokens,
            "threads": threading.active_count(), "cpu_seconds": time.process_time()}


def create_api(service_url: str, thread_tokens: int | None = None) -> FastAPI:
    """The API, calling the service at `service_url`; `thread_tokens` resizes the thread pool."""
    app = FastAPI(lifespan=lifespan)
    app.state.service_url = service_url
    app.state.thread_tokens = thread_tokens
    app.include_router(router)
    return app


FACTORIES = {"service": create_service, "api": create_api}


# Serving: in a process of its own (to measure), or in a thread of this one (to show).

def free_socket() -> socket.socket:
    """A listening TCP socket on a free port of 127.0.0.1 (the system picks the port)."""
    # IPPROTO_TCP said outright: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on the
    # connections of a socket that says so, and with it on, many answers wait 40 ms for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def server_config(app) -> uvicorn.Config:
    # Keep-alive well beyond any pause of the measurement: with uvicorn's default of 5 s, a user's
    # idle connection can be closed just as it sends its next request ("Server disconnected").
    return uvicorn.Config(app, loop="asyncio", http="h11", log_level="warning", access_log=False,
                          timeout_graceful_shutdown=5, timeout_keep_alive=300)


def in_debug_mode(app, slow: float = 0.15):
    """`app`, turning on asyncio's debug mode on the loop that serves it: the loop then logs
    every step of a task that holds it for longer than `slow` seconds. (asyncio's default is
    0.1 s; a busy machine can stretch a quick step past that.)"""

    async def wrapped(scope, receive, send):
        loop = asyncio.get_running_loop()
        if not loop.get_debug():
            loop.set_debug(True)
            loop.slow_callback_duration = slow
        await app(scope, receive, send)

    return wrapped


@contextmanager
def asyncio_warnings() -> Iterator[list[str]]:
    """Collect the messages that asyncio logs at WARNING or above, instead of printing them."""
    caught: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage())

    logger, handler = logging.getLogger("asyncio"), Collect(logging.WARNING)
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def serving_process(kind: str, **options) -> Iterator[str]:
    """Serve create_<kind>(**options) with uvicorn in a new process; yield its base URL. On the
    way out the server gets SIGTERM and stops gracefully: its lifespan's shutdown runs."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([sys.executable, __file__, "--serve", kind, json.dumps(options)],
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            port = process.stdout.readline().strip()  # the child prints its port, then serves
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if not port.isdigit():
                        raise httpx.ConnectError("the server printed no port")
                    httpx.get(url, timeout=5)  # any answer will do, 404 included
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        process.wait()
                        errors.seek(0)
                        raise RuntimeError(f"the {kind} server did not start:\n{errors.read()}") from None
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


def serve_in_this_process(kind: str, options: str) -> None:
    """The child's side of serving_process(): print the port, then serve until SIGTERM."""
    app = FACTORIES[kind](**json.loads(options))
    sock = free_socket()
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(server_config(app)).run(sockets=[sock])


@contextmanager
def serving(app, debug: bool = False, thread_name: str = "event loop") -> Iterator[str]:
    """Serve `app` with uvicorn in a new thread of this process, which runs the server's event
    loop (in debug mode if asked); yield its base URL; stop it gracefully on the way out (its
    lifespan's shutdown runs)."""
    sock = free_socket()
    server = uvicorn.Server(server_config(in_debug_mode(app) if debug else app))
    runner = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=thread_name, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not runner.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        runner.join(timeout=15)
        sock.close()


# Measuring.

def percentile(values: list[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value that `percent` % of them do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    variant: str
    concurrency: int
    seconds: float  # from the first request sent to the last answer received
    latencies: list[float]
    cpu_seconds: float  # used by the API's process meanwhile

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / len(self.latencies)


@asynccontextmanager
async def users(count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` users, each with a client of its own, as real users have. (One client shared by
    many callers at once costs CPU of its own: the table's last column shows it on the API's
    side.) They share one TLS context: making one per client takes a while, and none is used."""
    context = ssl.create_default_context()
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(httpx.AsyncClient(verify=context, timeout=120)) for _ in range(count)]


async def burst(clients: list[httpx.AsyncClient], url: str) -> tuple[float, list[float]]:
    """Each client sends one GET to `url`, all at once; return the seconds for all, and each one's."""

    async def one(client: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        response = await client.get(url)
        response.raise_for_status()
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = await asyncio.gather(*(one(client) for client in clients))
    return time.perf_counter() - started, list(latencies)


async def read_stats(client: httpx.AsyncClient, api_url: str) -> dict:
    return (await client.get(f"{api_url}/stats")).json()


async def measure(api_url: str, variants=tuple(VARIANTS), levels=LEVELS, trap_levels=TRAP_LEVELS) -> list[Result]:
    """Each variant at each level (for (a), each of `trap_levels`): a warm-up request, then
    `level` users send one request each."""
    results = []
    async with users(max(levels)) as clients:
        for variant in variants:
            url = f"{api_url}/{variant}"
            await burst(clients[:1], url)
            for level in trap_levels if variant == "trap" else levels:
                cpu_before = (await read_stats(clients[0], api_url))["cpu_seconds"]
                seconds, latencies = await burst(clients[:level], url)
                cpu = (await read_stats(clients[0], api_url))["cpu_seconds"] - cpu_before
                results.append(Result(variant, level, seconds, latencies, cpu))
    return results


async def probe(api_url: str, variant: str, size: int = 20, path: str = "/ping") -> tuple[float, float]:
    """While `size` users call the variant at once, a new user sends one GET to `path` on the
    same server. Return the seconds that request took, and the seconds the burst took."""
    async with users(size + 1) as (newcomer, *others):
        await asyncio.gather(*(client.get(f"{api_url}/ping") for client in others))  # connected
        burst_done = asyncio.create_task(burst(others, f"{api_url}/{variant}"))
        await asyncio.sleep(0.1)  # the burst has reached the server
        started = time.perf_counter()
        (await newcomer.get(f"{api_url}{path}")).raise_for_status()
        probe_seconds = time.perf_counter() - started
        burst_seconds, _ = await burst_done
    return probe_seconds, burst_seconds


async def peak_threads(api_url: str, variant: str, size: int) -> dict:
    """While `size` users call the variant at once, read GET /stats every 20 ms. Return the
    most tokens borrowed at once, the limiter's total, and the most threads the process had."""
    async with users(size + 1) as (watcher, *others):
        burst_done = asyncio.create_task(burst(others, f"{api_url}/{variant}"))
        seen = []
        while not burst_done.done():
            seen.append(await read_stats(watcher, api_url))
            await asyncio.sleep(0.02)
        await burst_done
    return {"borrowed_tokens": max(s["borrowed_tokens"] for s in seen), "total_tokens": seen[-1]["total_tokens"],
            "threads": max(s["threads"] for s in seen)}


def throughput_ratio(results: list[Result], level: int, over: str = "async", under: str = "trap") -> float:
    by = {(r.variant, r.concurrency): r.throughput for r in results}
    return by[over, level] / by[under, level]


def table(results: list[Result]) -> str:
    lines = [f"{'variant':<36}{'users':>6}{'requests/s':>12}{'median s':>10}{'p95 s':>8}{'CPU ms/request':>16}"]
    for r in results:
        lines.append(f"{VARIANTS[r.variant]:<36}{r.concurrency:>6}{r.throughput:>12.1f}{r.median:>10.3f}"
                     f"{r.p95:>8.3f}{r.cpu_ms:>16.1f}")
    return "\n".join(lines)


def plot_png(results: list[Result], delay: float = DELAY) -> bytes:
    """Throughput and latency against concurrency, one colour per variant, as a PNG."""
    from matplotlib.figure import Figure  # not pyplot: a notebook shows nothing twice

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    speed, wait = figure.subplots(1, 2)
    for variant, label in VARIANTS.items():
        rows = [r for r in results if r.variant == variant]
        levels = [r.concurrency for r in rows]
        line, = speed.plot(levels, [r.throughput for r in rows], marker="o", label=label)
        wait.plot(levels, [r.median for r in rows], marker="o", color=line.get_color())
        wait.plot(levels, [r.p95 for r in rows], marker=".", linestyle="--", color=line.get_color())
    levels = sorted({r.concurrency for r in results})
    wait.axhline(delay, color="grey", linewidth=0.8)
    wait.annotate("one delay of the service", (levels[-1], delay), textcoords="offset points", xytext=(0, 3),
                  ha="right", fontsize="small", color="grey")
    speed.set(xscale="log", xlabel="users sending at once", ylabel="requests per second", title="Throughput")
    wait.set(xscale="log", yscale="log", xlabel="users sending at once", ylabel="seconds",
             title="Latency: median (solid) and p95 (dashed)")
    for axes in (speed, wait):
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.minorticks_off()
        axes.yaxis.set_major_formatter("{x:g}")
        axes.grid(alpha=0.3)
    speed.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


async def run(delay: float, levels: tuple[int, ...], trap_levels: tuple[int, ...]) -> list[Result]:
    with serving_process("service", delay=delay) as service_url, \
            serving_process("api", service_url=service_url) as api_url:
        results = await measure(api_url, levels=levels, trap_levels=trap_levels)
        print(table(results))
        shared = set(levels) & set(trap_levels)
        level = RATIO_LEVEL if RATIO_LEVEL in shared else max(shared)
        print(f"\nThroughput with {level} users, (c) over (a): {throughput_ratio(results, level):.1f}x")
        for variant in ("trap", "async"):
            ping_seconds, burst_seconds = await probe(api_url, variant)
            print(f"GET /ping during a burst of 20 on {VARIANTS[variant]}: {ping_seconds:.3f} s "
                  f"(the burst took {burst_seconds:.2f} s)")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=DELAY, help="seconds the service takes to answer")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="users at once, comma-separated")
    parser.add_argument("--trap-levels", default=",".join(map(str, TRAP_LEVELS)), help="the same, for (a)")
    parser.add_argument("--png", help="also save the plot to this PNG file")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "OPTIONS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve_in_this_process(*options.serve)
        return 0
    levels = tuple(int(level) for level in options.levels.split(","))
    trap_levels = tuple(int(level) for level in options.trap_levels.split(","))
    print(f"The service answers after {options.delay} s; {os.cpu_count()} CPUs; "
          f"httpx {httpx.__version__}, uvicorn {uvicorn.__version__} (asyncio, h11).\n")
    results = asyncio.run(run(options.delay, levels, trap_levels))
    if options.png:
        with open(options.png, "wb") as file:
            file.write(plot_png(results, options.delay))
        print(f"Plot saved to {options.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

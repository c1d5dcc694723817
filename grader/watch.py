"""`grader watch chapter-N`: re-check on every save, with the next app host already warm.

The first check costs what `grader check` costs. While the learner edits, a fresh app host
is started for the next run and imports FastAPI, SQLAlchemy, Pydantic and uvicorn, so after
a save only the learner's own module has to be imported before the first check runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from grader.catalogue import Chapter
from grader.runner import Limits, RunResult, Runner, Scratch
from grader.supervisor import Supervisor

# Seconds of quiet after a change before re-checking: an editor's "save" is often several writes.
SETTLE_MS = 30


def watch(
    chapter: Chapter,
    folder: Path,
    limits: Limits,
    run_once: Callable[[Runner], RunResult],
    say: Callable[[str], None],
    stop_after: int | None = None,
) -> None:
    """Check now, then again after every change to a Python file under `folder`.

    `run_once` grades with a runner and reports (the CLI's console report); `stop_after`
    ends the loop after that many re-checks (for tests and benchmarks). The file watcher
    starts before the first check, so a save made while a check runs is not missed.
    """
    changes: queue.Queue[set] = queue.Queue()
    ready, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch_files, args=(folder, changes, ready, stop), daemon=True)
    watcher.start()
    ready.wait(timeout=5)
    spare: tuple[Scratch, Supervisor] | None = None
    try:
        run_once(Runner(chapter, folder, limits))
        spare = Runner.prepare(chapter, limits)
        say(f"\nWatching {folder} for changes to .py files. Press Ctrl-C to stop.")
        rechecks = 0
        while stop_after is None or rechecks < stop_after:
            changed = changes.get()
            while not changes.empty():  # saves that came in while a check ran: one re-check
                changed |= changes.get()
            names = sorted({Path(path).relative_to(folder).as_posix() for _, path in changed})
            say(f"\n── {', '.join(names)} changed at {datetime.now():%H:%M:%S} ──\n")
            if spare[1].host is None or spare[1].host.process.poll() is not None:  # the spare died: replace it
                _discard(spare)
                spare = Runner.prepare(chapter, limits)
            prepared, spare = spare, None
            run_once(Runner(chapter, folder, limits, prepared=prepared))
            spare = Runner.prepare(chapter, limits)
            rechecks += 1
    finally:
        stop.set()
        if spare is not None:
            _discard(spare)


def _discard(prepared: tuple[Scratch, Supervisor]) -> None:
    scratch, supervisor = prepared
    supervisor.close()
    scratch.remove()


def _watch_files(folder: Path, changes: queue.Queue, ready: threading.Event, stop: threading.Event) -> None:
    from watchfiles import PythonFilter, watch as changes_of

    for batch in changes_of(folder, watch_filter=PythonFilter(), step=SETTLE_MS, debounce=1000,
                            stop_event=stop, yield_on_timeout=True, rust_timeout=200):
        ready.set()  # the first (empty) batch means the watch is in place
        if batch:
            changes.put(set(batch))

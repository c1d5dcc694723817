"""`grader watch chapter-N`: re-check on every save, from a warm worker.

The first check costs what `grader check` costs; later ones fork a worker that already has
pytest, FastAPI, SQLAlchemy and Pydantic imported (`grader.zygote`), so the first results of
a re-check arrive a fraction of a second after the save.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from grader.catalogue import Chapter
from grader.runner import Limits, RunResult, Runner, Zygote

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
    zygote = Zygote()
    try:
        run_once(Runner(chapter, folder, limits, zygote=zygote))
        say(f"\nWatching {folder} for changes to .py files. Press Ctrl-C to stop.")
        rechecks = 0
        while stop_after is None or rechecks < stop_after:
            changed = changes.get()
            while not changes.empty():  # saves that came in while a check ran: one re-check
                changed |= changes.get()
            names = sorted({Path(path).relative_to(folder).as_posix() for _, path in changed})
            say(f"\n── {', '.join(names)} changed at {datetime.now():%H:%M:%S} ──\n")
            if zygote.process.poll() is not None:  # the warm worker died: start another
                zygote = Zygote()
            run_once(Runner(chapter, folder, limits, zygote=zygote))
            rechecks += 1
    finally:
        stop.set()
        zygote.close()


def _watch_files(folder: Path, changes: queue.Queue, ready: threading.Event, stop: threading.Event) -> None:
    from watchfiles import PythonFilter, watch as changes_of

    for batch in changes_of(folder, watch_filter=PythonFilter(), step=SETTLE_MS, debounce=1000,
                            stop_event=stop, yield_on_timeout=True, rust_timeout=200):
        ready.set()  # the first (empty) batch means the watch is in place
        if batch:
            changes.put(set(batch))

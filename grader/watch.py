"""`grader watch chapter-N`: re-check on every save, from a warm worker.

The first check costs what `grader check` costs; later ones fork a worker that already has
pytest, FastAPI, SQLAlchemy and Pydantic imported (`grader.zygote`), so the first results of
a re-check arrive a fraction of a second after the save.
"""

from __future__ import annotations

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
    ends the loop after that many re-checks (for tests and benchmarks).
    """
    from watchfiles import PythonFilter, watch as changes_of

    zygote = Zygote()
    try:
        run_once(Runner(chapter, folder, limits, zygote=zygote))
        say(f"\nWatching {folder} for changes to .py files. Press Ctrl-C to stop.")
        rechecks = 0
        for changes in changes_of(folder, watch_filter=PythonFilter(), step=SETTLE_MS, debounce=1000):
            names = sorted({Path(path).relative_to(folder).as_posix() for _, path in changes})
            say(f"\n── {', '.join(names)} changed at {datetime.now():%H:%M:%S} ──\n")
            if zygote.process.poll() is not None:  # the warm worker died: start another
                zygote = Zygote()
            run_once(Runner(chapter, folder, limits, zygote=zygote))
            rechecks += 1
            if stop_after is not None and rechecks >= stop_after:
                return
    finally:
        zygote.close()

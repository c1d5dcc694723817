"""The learner's exercise folder against its pristine starter: see the changes, or start over.

`reset` is the only grader command that writes into an exercise folder, and it first copies
the learner's work to a timestamped backup beside the progress file, so nothing is lost.
"""

from __future__ import annotations

import difflib
import shutil
from fnmatch import fnmatch
from datetime import datetime
from pathlib import Path

from grader.catalogue import Chapter, starter_dir
from grader.progress import state_dir

PATTERNS = ("__pycache__", "*.pyc", ".pytest_cache", "*.db", ".ipynb_checkpoints")
IGNORED = shutil.ignore_patterns(*PATTERNS)


def _files(folder: Path) -> dict[str, Path]:
    """Files that are the learner's work: no caches, databases or checkpoints."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not any(fnmatch(part, pattern) for part in path.relative_to(folder).parts for pattern in PATTERNS)
    }


def _text(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text().splitlines(keepends=True)
    except UnicodeDecodeError:
        return [f"(binary file, {path.stat().st_size} bytes)\n"]


def diff(chapter: Chapter, folder: Path) -> str:
    """A unified diff from the starter to the learner's folder; empty when they are the same."""
    before, after = _files(starter_dir(chapter)), _files(folder)
    chunks = []
    for name in sorted(before.keys() | after.keys()):
        old, new = _text(before.get(name)), _text(after.get(name))
        if old != new:
            chunks.extend(difflib.unified_diff(
                old, new,
                fromfile=f"starter/{name}" if name in before else "/dev/null",
                tofile=f"yours/{name}" if name in after else "/dev/null",
            ))
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def backup(chapter: Chapter, folder: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = state_dir() / "backups" / f"{chapter.slug}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = target.with_name(f"{chapter.slug}-{stamp}-{suffix}")
    shutil.copytree(folder, target, ignore=IGNORED)
    return target


def reset(chapter: Chapter, folder: Path) -> Path | None:
    """Restore the starter; return where the learner's work was saved (None if unchanged)."""
    if folder.exists() and not diff(chapter, folder):
        return None
    saved = backup(chapter, folder) if folder.exists() else None
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(starter_dir(chapter), folder, ignore=IGNORED)
    return saved

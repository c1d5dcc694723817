"""The learner's exercise folder and its pristine starter: create it, see the changes, or start over.

A chapter's pristine starter is not stored as a folder of its own: `chapter.toml` names the
folders it is made of (chapter 2's is chapter 1's solution) and the statement, and
`materialize` assembles them wherever one is needed. So each stage of the tracker has one copy.

`start` and `reset` are the only grader commands that write into an exercise folder: `start`
only creates one, and `reset` first copies the learner's work to a timestamped backup beside
the progress file, so nothing is lost.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from fnmatch import fnmatch
from datetime import datetime
from pathlib import Path

from grader.catalogue import Chapter, UsageError, course_root
from grader.progress import state_dir

PATTERNS = ("__pycache__", "*.pyc", ".pytest_cache", ".import_linter_cache", "*.db", ".ipynb_checkpoints")
IGNORED = shutil.ignore_patterns(*PATTERNS)


def materialize(chapter: Chapter, into: Path) -> Path:
    """Write the chapter's pristine starter into the folder `into` and return it: each folder of
    its `starter` in turn (a later one overlays the earlier ones; a folder's own README.md is
    left out), then its `statement` as README.md."""
    root = course_root()
    if root is None:
        raise UsageError(f"The starter of {chapter.slug} is made from the course's clone, and the grader "
                         "is installed outside one. Clone the course, then run `pip install -e .` in the clone.")
    if not chapter.starter or not chapter.statement:
        raise UsageError(f"grader/suites/{chapter.slug}/chapter.toml names no `starter` or no `statement`.")
    sources = [root / name for name in chapter.starter]
    missing = [path for path in [*sources, root / chapter.statement] if not path.exists()]
    if missing:
        raise UsageError(f"The starter of {chapter.slug} is made from files the clone lacks: {', '.join(map(str, missing))}. "
                         f"`git status` in {root} shows what changed; `git checkout -- .` restores it.")
    for source in sources:
        def ignore(folder: str, names: list[str], source: Path = source) -> set[str]:
            return set(IGNORED(folder, names)) | ({"README.md"} if Path(folder) == source else set())

        shutil.copytree(source, into, ignore=ignore, dirs_exist_ok=True)
    shutil.copyfile(root / chapter.statement, into / "README.md")
    return into


def start(chapter: Chapter, folder: Path, program: str = "grader", path_option: str = "") -> str:
    """Create the exercise `folder` from the pristine starter, unless it exists; say what happened
    and what to run next (`program` is `grader` or `%grader`, `path_option` is ` --path DIR` or "")."""
    if folder.exists():
        return (f"{folder} exists already, so nothing was changed.\nTo start over from the starter code, "
                f"run `{program} reset {chapter.slug}{path_option}` (it saves your work to a backup first).")
    materialize(chapter, folder)
    module = Path(*chapter.app_module.split(".")).with_suffix(".py")
    return (f"Created {folder} with the starting code of {chapter.slug}. Next:\n"
            f"  1. Read the exercise: {folder / 'README.md'}\n"
            f"  2. Change the code: {folder / module}\n"
            f"  3. Check your work: `{program} check {chapter.slug}{path_option}`")


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
    with tempfile.TemporaryDirectory(prefix="grader-starter-") as scratch:
        before, after = _files(materialize(chapter, Path(scratch) / chapter.slug)), _files(folder)
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
    """Restore the starter (or create the folder from it); return where the learner's work was
    saved (None if there was nothing to save). The diff comes first, so a starter that cannot be
    made stops the reset before anything is touched."""
    if folder.exists() and not diff(chapter, folder):
        return None
    saved = backup(chapter, folder) if folder.exists() else None
    if folder.exists():
        shutil.rmtree(folder)
    materialize(chapter, folder)
    return saved

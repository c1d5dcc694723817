"""Helpers for the grader's own tests: submissions made from the solution plus one edit, and
a `grade` that also proves each run left the folder untouched and nothing behind."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from grader.catalogue import course_root, find_chapter, solution_dir
from grader.runner import Limits, Runner

CHAPTER = find_chapter("chapter-1")
SOLUTION = solution_dir(CHAPTER)
#: Chapter 1's starting code as stored (`grader start` adds the statement as README.md).
STARTER = course_root() / "grader" / "starters" / "chapter-1"


@pytest.fixture(autouse=True)
def own_progress(tmp_path, monkeypatch):
    """Every test starts with no progress of its own (and leaves the clone's alone): what the
    hints show must not depend on runs before it."""
    monkeypatch.setenv("GRADER_STATE_DIR", str(tmp_path / "own-progress"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder`, with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def leftovers(where: Path | None = None) -> list[str]:
    """Processes of a grading run still alive, and scratch folders still on disk: of runs whose
    scratch folders go under `where` (each test gets its own), or of any run."""
    marker = f"{where}/grader-run-" if where is not None else "grader-run-"
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and (marker in cwd or marker in command):
            found.append(f"process {entry.name}: {command[:120]}")
    found += [f"folder {path}" for path in (where or Path(tempfile.gettempdir())).glob("grader-run-*")]
    return found


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """This test's own temporary folder for the grader's scratch areas (in this process, and
    for `grader` commands it starts), so other grading on the machine cannot confuse it."""
    folder = tmp_path / "grader-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def apply(text: str, find: str, replace: str, count: int | None = 1) -> str:
    found = text.count(find)
    assert found and (count is None or found == count), f"the test's edit does not apply: {find!r}"
    return text.replace(find, replace)


@pytest.fixture
def submission(tmp_path):
    """A copy of the solution (or starter) with `find` replaced by `replace` in main.py.

    `also` holds more (find, replace) pairs, each replaced wherever it occurs.
    """

    def make(find: str | None = None, replace: str = "", append: str = "", start: Path = SOLUTION,
             files: dict[str, str] | None = None, also: list[tuple[str, str]] = ()) -> Path:
        folder = tmp_path / "submission"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(start, folder, ignore=shutil.ignore_patterns("__pycache__"))
        main = folder / "tracker" / "main.py"
        text = main.read_text()
        if find is not None:
            text = apply(text, find, replace)
        for more_find, more_replace in also:
            text = apply(text, more_find, more_replace, count=None)
        main.write_text(text + append)
        for name, content in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content)
        return folder

    return make


@pytest.fixture
def grade(scratch_root):
    """Grade a folder in this process; fail the test if the folder changed or anything is left."""

    def run(folder: Path, **limits: float):
        before = snapshot(folder)
        result = Runner(CHAPTER, folder, Limits(**limits)).run()
        assert snapshot(folder) == before, "grading changed the learner's folder"
        deadline = time.monotonic() + 5
        while leftovers(scratch_root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers(scratch_root) == [], f"left behind after grading: {leftovers(scratch_root)}"
        return result

    return run

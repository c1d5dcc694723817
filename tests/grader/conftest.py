"""Helpers for the grader's own tests: submissions made from the solution plus one edit."""

import shutil
from pathlib import Path

import pytest

from grader.catalogue import find_chapter, solution_dir, starter_dir
from grader.runner import Limits, Runner

CHAPTER = find_chapter("chapter-1")
SOLUTION = solution_dir(CHAPTER)
STARTER = starter_dir(CHAPTER)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder`, with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def submission(tmp_path):
    """Make a copy of the solution (or starter) with `find` replaced by `replace` in main.py."""

    def make(find: str | None = None, replace: str = "", append: str = "", start: Path = SOLUTION,
             files: dict[str, str] | None = None) -> Path:
        folder = tmp_path / "submission"
        shutil.copytree(start, folder, ignore=shutil.ignore_patterns("__pycache__"))
        main = folder / "tracker" / "main.py"
        text = main.read_text()
        if find is not None:
            assert text.count(find) == 1, f"the test's edit does not apply: {find!r}"
            text = text.replace(find, replace)
        main.write_text(text + append)
        for name, content in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content)
        return folder

    return make


@pytest.fixture
def grade():
    def run(folder: Path, **limits: float):
        return Runner(CHAPTER, folder, Limits(**limits)).run()

    return run

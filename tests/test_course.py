"""The course as a whole: the self-test, the visible smoke tests, the notebooks, the book.

Each runs as its own process, as a learner or CI would run it, and its output is shown when
it fails.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))
sys.path.insert(0, str(ROOT))
from grader.catalogue import all_chapters, find_chapter  # noqa: E402
from grader.workspace import materialize  # noqa: E402


def run(args, cwd=ROOT, timeout=1800):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited with {result.returncode}:\n{output}"
    return result


def test_grader_verify():
    """Every solution passes every check, every check fails on its starter, every mutant is caught."""
    # Five chapters, about 300 runs, two at a time: half an hour on a busy 2-core machine.
    result = run([sys.executable, "-m", "grader", "verify"], timeout=4200)
    assert "The course is sound" in result.stdout


@pytest.mark.parametrize("folder", [f"starter/{chapter.slug}" for chapter in all_chapters()]
                         + [f"solutions/{path.name}" for path in sorted((ROOT / "solutions").glob("chapter-*"))])
def test_visible_smoke_test(folder, tmp_path):
    """Each starter, as `grader start` makes it, and each solution: its smoke test passes."""
    kind, name = folder.split("/")
    copy = tmp_path / name
    if kind == "starter":
        materialize(find_chapter(name), copy)
    else:
        shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns("__pycache__"))
    result = run([sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_smoke.py"], cwd=copy)
    assert "1 passed" in result.stdout


def test_notebooks_match_their_stored_outputs():
    assert NOTEBOOKS, "no narrative notebooks found under book/"
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(ROOT / "book" / "nbval-sanitize.cfg"), *map(str, NOTEBOOKS)])


def test_book_builds_with_warnings_as_errors_and_shows_executed_outputs(book_html, site):
    """The strict build itself is the `book_html` fixture (tests/conftest.py), shared with the browser tests
    of tests/test_book_in_browser.py; here, three pages as the browser rendered them."""
    walkthrough = site.html_of("book/chapter-1/validation.html")
    assert walkthrough.count('class="cell_output') >= 10, "the walk-through shows too few executed outputs"
    assert "string_too_short" in walkthrough  # a 422 body, as the executed cell printed it
    assert "Exercise" in walkthrough  # the navigation leads on to the exercise
    starting = site.html_of("book/starting-api.html")
    assert "hashed_password" in starting and "cell_output" in starting
    exercise = site.html_of("book/chapter-1/exercise.html")
    assert "Task 5: listing tasks" in exercise
    # Every hint's "Read:" link names a section that exists in the built book.
    for chapter in all_chapters():
        for check in chapter.checks:
            assert check.read, f"{check.name} names no book section to read"
            page, anchor, _title = check.read
            built = book_html / (page.rsplit(".", 1)[0] + ".html")
            assert built.is_file(), f"{check.name}: {page} is not in the built book"
            assert f'id="{anchor}"' in built.read_text(), f"{check.name}: no section #{anchor} in {built.name}"


CHECK_LINE = re.compile(r"^ [✔✘!⏱·] ([a-z0-9-]+) +(.+)$")


def test_grader_output_shown_in_the_book_matches_the_checks():
    """Sample `grader check` output pasted in a page must name real checks, in their order: the
    checks of the page's chapter (chapters share check names), chapter 1's outside a chapter."""
    chapters = {chapter.slug: chapter for chapter in all_chapters()}
    for page in ROOT.joinpath("book").rglob("*.md"):
        chapter = chapters.get(page.relative_to(ROOT / "book").parts[0], chapters["chapter-1"])
        titles = {check.name: check.title for check in chapter.checks}
        order = [check.name for check in chapter.checks]
        shown = [CHECK_LINE.match(line) for line in page.read_text().splitlines()]
        names = [match.group(1) for match in shown if match]
        for match in filter(None, shown):
            assert titles.get(match.group(1)) == match.group(2).strip(), f"{page.name}: stale line {match.group(0)!r}"
        assert names == sorted(names, key=order.index), f"{page.name}: checks shown out of order"

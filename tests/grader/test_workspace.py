"""Exercise folders made from the one stored copy of each stage: `grader start`, a folder not
started yet, `reset` and `diff` against a starter made on the spot, and every part a chapter
names."""

import dataclasses

import pytest

from grader import catalogue, cli
from grader.catalogue import all_chapters, course_root
from grader.notebook import Message, NotebookResult, grader_magic
from grader.workspace import materialize

from .conftest import CHAPTER, STARTER, snapshot

ROOT = course_root()


def files(folder):
    """Every file under `folder` with its bytes, caches left out."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


@pytest.mark.parametrize("chapter", all_chapters(), ids=lambda chapter: chapter.slug)
def test_every_part_a_chapter_names_exists(chapter):
    """The guard on every copy: the statement is a page of the book, each starter folder exists."""
    assert chapter.statement and chapter.starter, f"{chapter.slug}'s chapter.toml needs `statement` and `starter`"
    assert (ROOT / chapter.statement).is_file(), f"{chapter.slug}: no statement {chapter.statement}"
    assert f"file: {chapter.statement.removesuffix('.md')}" in (ROOT / "_toc.yml").read_text(), (
        f"{chapter.slug}: the statement {chapter.statement} is not in _toc.yml, so the book does not publish it")
    for folder in chapter.starter:
        assert (ROOT / folder).is_dir(), f"{chapter.slug}: no starter folder {folder}"


def test_chapter_1_starts_from_its_stored_code_and_the_statement(tmp_path):
    made = materialize(CHAPTER, tmp_path / "made")
    expected = files(STARTER) | {"README.md": (ROOT / "book" / "chapter-1" / "exercise.md").read_bytes()}
    assert files(made) == expected


def test_later_folders_overlay_earlier_ones_and_their_readmes_give_way_to_the_statement(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, names in ((first, ["README.md", "app/main.py", "app/models.py", "app/__pycache__/x.pyc", "t.db"]),
                          (second, ["README.md", "app/main.py", "app/extra.py"])):
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(f"{folder.name}:{name}")
    (tmp_path / "statement.md").write_text("# The task")
    # Paths from the course's root; absolute ones stand for themselves.
    chapter = dataclasses.replace(CHAPTER, statement=str(tmp_path / "statement.md"), starter=(str(first), str(second)))
    made = materialize(chapter, tmp_path / "made")
    assert {name: text.decode() for name, text in files(made).items()} == {
        "README.md": "# The task",
        "app/main.py": "second:app/main.py",
        "app/models.py": "first:app/models.py",
        "app/extra.py": "second:app/extra.py",
    }


def test_a_missing_part_is_a_usage_error_that_names_it(tmp_path):
    chapter = dataclasses.replace(CHAPTER, starter=("solutions/chapter-0",))
    with pytest.raises(catalogue.UsageError, match="files the clone lacks: .*solutions/chapter-0\\."):
        materialize(chapter, tmp_path / "made")
    assert not (tmp_path / "made").exists()
    with pytest.raises(catalogue.UsageError, match="names no `starter`"):
        materialize(dataclasses.replace(CHAPTER, starter=()), tmp_path / "made")


def test_start_creates_the_folder_once_and_then_changes_nothing(tmp_path, capsys):
    folder = tmp_path / "mine" / "chapter-1"
    assert cli.main(["start", "1", "--path", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"Created {folder} with the starting code of chapter-1." in out
    assert f"Read the exercise: {folder / 'README.md'}\n" in out and f"{folder / 'tracker' / 'main.py'}\n" in out
    assert f"Check your work: `grader check chapter-1 --path {folder}`" in out
    assert files(folder) == files(STARTER) | {"README.md": (ROOT / CHAPTER.statement).read_bytes()}

    (folder / "tracker" / "main.py").write_text("# my work\n")
    before = snapshot(folder)
    assert cli.main(["start", "chapter-1", "--path", str(folder)]) == 0
    out = capsys.readouterr().out
    assert snapshot(folder) == before
    assert f"{folder} exists already, so nothing was changed." in out
    assert f"`grader reset chapter-1 --path {folder}`" in out


@pytest.fixture
def not_started(tmp_path, monkeypatch):
    """The clone's exercise folder for chapter 1, moved to a temporary place that does not exist."""
    folder = tmp_path / "exercises" / "chapter-1"
    monkeypatch.setattr(catalogue, "exercise_dir", lambda chapter: folder)
    monkeypatch.setattr(cli, "exercise_dir", lambda chapter: folder)
    return folder


@pytest.mark.parametrize("command", ["check", "watch", "diff"])
def test_a_chapter_not_started_says_how_to_start_it(not_started, command, capsys):
    assert cli.main([command, "chapter-1"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        "grader: exercises/chapter-1 does not exist yet. Create it with `grader start chapter-1`.\n")
    assert not not_started.exists()


def test_reset_creates_a_folder_not_started(not_started, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_STATE_DIR", str(tmp_path / "state"))
    assert cli.main(["reset", "1"]) == 0
    assert "did not exist; it holds the starter code now" in capsys.readouterr().out
    assert files(not_started) == files(materialize(CHAPTER, tmp_path / "pristine"))
    assert not (tmp_path / "state" / "backups").exists()  # nothing to save
    assert cli.main(["diff", "1"]) == 0
    assert "is the same as the starter code" in capsys.readouterr().out


def test_list_says_which_chapters_are_not_started(not_started, capsys):
    assert cli.main(["list"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("chapter-1 ")
    assert first.endswith(f"[{len(CHAPTER.checks)} checks, (not started: grader start chapter-1)]")
    not_started.mkdir(parents=True)
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f"[{len(CHAPTER.checks)} checks, exercises/chapter-1]")


def test_the_magic_starts_a_folder_and_leaves_an_existing_one_alone(tmp_path):
    folder = tmp_path / "nb"
    created = grader_magic(f"start 1 --path {folder}")
    assert isinstance(created, Message) and f"Created {folder}" in repr(created)
    assert "<code>%grader check chapter-1 --path" in created._repr_html_()
    assert (folder / "README.md").is_file() and (folder / "tracker" / "main.py").is_file()
    again = grader_magic(f"start 1 --path {folder}")
    assert "exists already, so nothing was changed" in again.text and "%grader reset chapter-1" in again.text
    unknown = grader_magic("start 99")
    assert isinstance(unknown, NotebookResult) and "There is no chapter '99'" in unknown.error

"""The learner's everyday commands: watch, hint, progress, diff, reset, and the result schema."""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import jsonschema
import pytest

from grader import manifest
from grader.workspace import materialize

from .conftest import CHAPTER, SOLUTION, STARTER, snapshot


@pytest.fixture
def state(tmp_path, monkeypatch):
    folder = tmp_path / "state"
    monkeypatch.setenv("GRADER_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def attempt(tmp_path):
    """A learner's exercise folder as `grader start` makes it, outside the clone."""
    return materialize(CHAPTER, tmp_path / "attempt")


@pytest.fixture
def finished(tmp_path):
    """A learner's finished exercise, outside the clone (runs on solutions/ are not recorded)."""
    folder = tmp_path / "finished"
    shutil.copytree(SOLUTION, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def grader(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=os.environ)


def test_hints_climb_a_ladder_one_rung_per_failing_run(state, attempt):
    first = grader("check", "1", "--path", attempt).stdout
    assert "What is wrong: A new user comes back with everything the ORM object holds" in first
    assert "Read: “What a client may see: UserPublic” in book/chapter-1/validation.ipynb" in first
    assert "Hint:" not in first and "runs in a row" not in first
    second = grader("check", "1", "--path", attempt).stdout
    assert "Hint: Give the route `response_model=UserPublic`" in second and "runs in a row" not in second
    third = grader("check", "1", "--path", attempt).stdout
    assert "More (failed 3 runs in a row): UserPublic lists what anyone may see of a user" in third
    quiet = grader("check", "1", "--path", attempt, "--no-hints").stdout
    assert "What is wrong" not in quiet and "Hint:" not in quiet and "Expected status 201" in quiet
    untouched = grader("check", "1", "--path", attempt, "--no-record").stdout
    assert "Hint:" not in untouched  # neither reads nor writes the record: the first rung again
    assert "More (failed 5 runs" in grader("check", "1", "--path", attempt).stdout  # the --no-hints run counted


def test_progress_remembers_best_and_latest_scores(state, attempt, finished):
    def row():  # chapter 1's line of the table
        return next(line for line in grader("progress").stdout.splitlines() if "chapter-1" in line)

    assert "not tried yet" in row()
    grader("check", "1", "--path", attempt)
    grader("check", "1", "--path", SOLUTION)  # the course's own solution is not the learner's score
    assert "not tried yet" not in row()
    total = len(CHAPTER.checks)
    assert f"0/{total}" in row() and f"{total}/{total}" not in row()
    grader("check", "1", "--path", finished)
    grader("check", "1", "--path", attempt)
    assert re.findall(rf"\b\d+/{total}\b", row()) == [f"{total}/{total}", f"0/{total}"]  # best, then latest
    assert str(state) in grader("progress").stdout


def test_hint_names_the_first_failing_check_or_a_chosen_one(state, attempt, finished):
    grader("check", "1", "--path", attempt)
    first = CHAPTER.checks[0]
    assert grader("hint", "1").stdout.startswith(f"{first.name}: {first.title}")
    chosen = CHAPTER.check("list-tasks-filters-and-pages")
    out = grader("hint", "chapter-1", chosen.name).stdout
    assert chosen.lesson in out and chosen.hint in out and " ".join(chosen.explanation.split()) in out
    assert chosen.read[2] in out
    unknown = grader("hint", "1", "no-such-check")
    assert unknown.returncode == 2 and "has no check named 'no-such-check'" in unknown.stderr
    grader("check", "1", "--path", finished)
    assert "Every check of chapter-1 passed on your last run" in grader("hint", "1").stdout


def test_diff_shows_the_learners_changes(attempt):
    assert "is the same as the starter code" in grader("diff", "1", "--path", attempt).stdout
    main = attempt / "tracker" / "main.py"
    main.write_text(main.read_text().replace('@app.post("/users")', '@app.post("/users", status_code=201)'))
    out = grader("diff", "1", "--path", attempt).stdout
    assert '-@app.post("/users")' in out and '+@app.post("/users", status_code=201)' in out
    assert "--- starter/tracker/main.py" in out and "+++ yours/tracker/main.py" in out


def test_reset_saves_the_work_before_restoring_the_starter(state, attempt):
    main = attempt / "tracker" / "main.py"
    main.write_text(main.read_text() + "\n# my precious work\n")
    (attempt / "notes.txt").write_text("ideas")
    out = grader("reset", "1", "--path", attempt).stdout
    backups = list((state / "backups").iterdir())
    assert len(backups) == 1 and str(backups[0]) in out
    assert "# my precious work" in (backups[0] / "tracker" / "main.py").read_text()
    assert (backups[0] / "notes.txt").read_text() == "ideas"
    assert snapshot(attempt).keys() == snapshot(materialize(CHAPTER, attempt.with_name("pristine"))).keys()
    assert main.read_text() == (STARTER / "tracker" / "main.py").read_text()
    assert "nothing to reset" in grader("reset", "1", "--path", attempt).stdout
    assert len(list((state / "backups").iterdir())) == 1


def test_watch_rechecks_after_a_save(state, attempt):
    process = subprocess.Popen([sys.executable, "-m", "grader", "watch", "1", "--path", str(attempt)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = bytearray()
    cursor = [0]  # where the previous wait_for's text ended

    def wait_for(text, limit=90):
        """Read the raw pipe (not a buffered reader, which select cannot see into)."""
        deadline = time.monotonic() + limit
        while (found := seen.find(text.encode(), cursor[0])) < 0:
            assert time.monotonic() < deadline, f"no {text!r} in:\n{seen.decode()}"
            if select.select([process.stdout], [], [], 1)[0]:
                seen.extend(os.read(process.stdout.fileno(), 65536))
        cursor[0] = found + len(text)

    try:
        wait_for("Watching")
        total = len(CHAPTER.checks)
        assert f"Score: 0/{total}".encode() in seen
        shutil.copy(SOLUTION / "tracker" / "main.py", attempt / "tracker" / "main.py")
        wait_for("tracker/main.py changed")
        wait_for(f"Score: {total}/{total} checks passed")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 130


def test_json_results_follow_the_published_schema(tmp_path, state):
    schema = json.loads((manifest.HOME / "result.schema.json").read_text())
    for folder in (STARTER, SOLUTION):
        grader("check", "1", "--path", folder, "--json", tmp_path / "result.json")
        data = json.loads((tmp_path / "result.json").read_text())
        jsonschema.validate(data, schema)
        assert data["fingerprint"] == manifest.fingerprint()


def test_the_manifest_is_current():
    assert manifest.stale() == [], "run: python -m grader.manifest --update"

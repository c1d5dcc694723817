"""A room of learners: `grader batch` grades many submissions, `grader report` gathers one
learner's runs, `grader summary` reads a folder of reports into a table and a heatmap page.

The batch grades a handful of real chapter-1 submissions once (module-scoped); the summary
tests build their folders from those reports.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
from referencing import Registry, Resource

from grader import manifest
from grader.classroom import collect
from grader.workspace import materialize

from ..conftest import serve
from .conftest import CHAPTER, SOLUTION, snapshot


def grader(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env=env or os.environ)


def validator() -> jsonschema.Draft202012Validator:
    """The report schema, with the result schema it refers to."""
    result = json.loads((manifest.HOME / "result.schema.json").read_text())
    report = json.loads((manifest.HOME / "report.schema.json").read_text())
    registry = Registry().with_resource("grader-result/1", Resource.from_contents(result))
    return jsonschema.Draft202012Validator(report, registry=registry)


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A batch of chapter 1: a finished folder, the starter, a finished git repository, one that
    cannot be imported, a folder without the package, a missing path and a file."""
    base = tmp_path_factory.mktemp("room")
    learners = base / "learners"
    shutil.copytree(SOLUTION, learners / "alice", ignore=shutil.ignore_patterns("__pycache__"))
    materialize(CHAPTER, learners / "bob")
    broken = shutil.copytree(SOLUTION, learners / "dana", ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "tracker" / "main.py").write_text((broken / "tracker" / "main.py").read_text() + "\nthis is not python\n")
    (learners / "erin").mkdir()  # handed in nothing
    repository = shutil.copytree(SOLUTION, base / "repos" / "carol", ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "--quiet", cwd=repository)
    git("add", ".", cwd=repository)
    git("commit", "--quiet", "-m", "done", cwd=repository)
    (repository / "tracker" / "main.py").write_text("uncommitted = 'is not graded'\n")
    fake = base / "repos" / "frank.git"  # looks like a bare repository, is not one
    (fake / "objects").mkdir(parents=True)
    (fake / "HEAD").write_text("nonsense\n")
    (base / "notes.txt").write_text("not a submission\n")
    before = {path: snapshot(path) for path in (learners, repository, fake)}
    env = {**os.environ, "GRADER_STATE_DIR": str(base / "state"), "TMPDIR": str(base)}
    finished = grader("batch", "chapter-1", learners, repository, fake, base / "missing", base / "notes.txt",
                      "--out", base / "reports", "--workers", "3", env=env)
    assert {path: snapshot(path) for path in before} == before, "the batch changed a learner's files"
    assert not list(base.glob("grader-batch-*")) and not list(base.glob("grader-run-*")), "scratch left behind"
    return base, finished


def reports_of(folder):
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_batch_writes_one_valid_report_per_submission_whatever_is_wrong_with_it(room):
    base, finished = room
    assert finished.returncode == 0, finished.stderr
    reports = reports_of(base / "reports")
    assert sorted(reports) == [f"{name}.chapter-1.json" for name in
                               ("alice", "bob", "carol", "dana", "erin", "frank", "missing", "notes.txt")]
    for report in reports.values():
        validator().validate(report)
    entry = {name.split(".chapter")[0]: report["chapters"]["chapter-1"] for name, report in reports.items()}
    total = len(CHAPTER.checks)
    assert entry["alice"]["result"]["score"] == {"passed": total, "total": total}
    assert entry["alice"]["result"]["sandbox"] in ("bubblewrap", "none")
    assert entry["alice"]["result"]["suite_fingerprint"] == manifest.fingerprint("suites/chapter-1/")
    assert entry["bob"]["status"] == "graded" and entry["bob"]["result"]["score"]["passed"] == 0
    # The repository is graded as committed (a clone), not as its working tree.
    assert entry["carol"]["result"]["score"]["passed"] == total
    assert entry["carol"]["source"] == str(base / "repos" / "carol")
    assert "tracker/main.py" in entry["dana"]["result"]["load_problem"]
    assert entry["erin"]["problem"].startswith(f"{base / 'learners' / 'erin' / 'tracker' / 'main.py'} is missing.")
    assert entry["frank"]["problem"].startswith(f"{base / 'repos' / 'frank.git'} could not be cloned: fatal:")
    assert entry["missing"]["problem"] == f"There is no folder {base / 'missing'}."
    assert "is a file, not a folder" in entry["notes.txt"]["problem"]
    assert re.search(r"Graded 4 of 8 submission\(s\) of chapter-1 in \d+ s with 3 at once: 2 passed every check, "
                     r"2 did not, 4 could not be graded\.", finished.stdout), finished.stdout
    assert "[8/8]" in finished.stdout.replace("[ ", "[")
    assert "✔ alice" in finished.stdout and "! erin" in finished.stdout


def test_a_folder_of_learners_is_told_from_a_learner_and_same_names_stay_apart(tmp_path):
    shutil.copytree(SOLUTION, tmp_path / "one" / "sam")
    shutil.copytree(SOLUTION, tmp_path / "two" / "sam")
    (tmp_path / "one" / ".hidden").mkdir()
    shutil.copytree(SOLUTION, tmp_path / "three" / "sam-2")
    found = collect(CHAPTER, [str(tmp_path / "one"), str(tmp_path / "two" / "sam"), str(tmp_path / "three"),
                              "https://example.org/x/lee.git", "git@example.org:kim.git"])
    assert [(item.name, item.folder, item.repository) for item in found] == [
        ("sam", tmp_path / "one" / "sam", None), ("sam-2", tmp_path / "two" / "sam", None),
        ("sam-2-2", tmp_path / "three" / "sam-2", None),
        ("lee", None, "https://example.org/x/lee.git"), ("kim", None, "git@example.org:kim.git")]


@pytest.mark.parametrize("args, said", [
    (["batch", "chapter-99", ".", "--out", "x"], "There is no chapter 'chapter-99'"),
    (["batch", "1", ".", "--out", "x", "--workers", "0"], "--workers must be at least 1"),
    (["batch", "1", ".", "--out", "pyproject.toml"], "pyproject.toml is a file; --out names the folder"),
    (["batch", "1", "--out", "x"], "the following arguments are required: SOURCE"),
    (["summary", "no-such-folder"], "There is no folder no-such-folder"),
    (["report", "--name", " "], "--name must not be empty"),
])
def test_usage_errors_say_what_is_wrong(args, said, tmp_path):
    shutil.copy(manifest.HOME.parent / "pyproject.toml", tmp_path)
    finished = grader(*args, cwd=tmp_path)
    assert finished.returncode == 2 and said in finished.stderr, finished.stderr
    assert not (tmp_path / "x").exists()


def test_report_gathers_the_latest_full_run_of_each_chapter(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_STATE_DIR", str(tmp_path / "state"))
    mine = shutil.copytree(SOLUTION, tmp_path / "mine", ignore=shutil.ignore_patterns("__pycache__"))
    assert grader("check", "1", "--path", mine).returncode == 0
    (mine / "tracker" / "main.py").write_text("broken(\n")
    grader("check", "1", "--path", mine, "--only", CHAPTER.checks[0].name)  # not a full run: not kept
    shown = grader("report", "--name", "Ada Lovelace", "--out", tmp_path / "ada.json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"chapter-1 +20/20 checks passed \(run \d{4}-\d\d-\d\d \d\d:\d\d\)", shown.stdout)
    assert "chapter-2   not tried yet" in shown.stdout
    report = json.loads((tmp_path / "ada.json").read_text())
    validator().validate(report)
    assert report["learner"]["name"] == "Ada Lovelace" and report["origin"] == "progress"
    assert report["chapters"]["chapter-1"]["result"]["score"]["passed"] == len(CHAPTER.checks)
    assert report["chapters"]["chapter-2"] == {"status": "not-tried", "when": None, "source": None, "problem": None,
                                               "result": None}
    again = grader("report", "--name", "Ada Lovelace", cwd=tmp_path)
    assert "grader-report-Ada_Lovelace.json" in again.stdout
    second = json.loads((tmp_path / "grader-report-Ada_Lovelace.json").read_text())
    assert second["learner"]["id"] == report["learner"]["id"], "one clone's reports are one learner"


@pytest.fixture
def reports_folder(room, tmp_path):
    """The batch's reports, a hostile name, two learners of the same name, and files that are not reports."""
    base, _ = room
    folder = shutil.copytree(base / "reports", tmp_path / "reports")
    alice = json.loads((folder / "alice.chapter-1.json").read_text())
    for index, (name, learner_id) in enumerate([("<script>alert(1)</script><b>x</b>", "hostile"),
                                                ("Sam", "aaaaaaaaaaaa"), ("Sam", "bbbbbbbbbbbb")]):
        copy = json.loads(json.dumps(alice))
        copy["learner"] = {"name": name, "id": learner_id}
        (folder / f"extra-{index}.json").write_text(json.dumps(copy))
    (folder / "notes.txt").write_text("hello")
    (folder / "broken.json").write_text("{not json")
    (folder / "result.json").write_text(json.dumps(alice["chapters"]["chapter-1"]["result"]))
    odd = {**alice, "chapters": {"chapter-1": {**alice["chapters"]["chapter-1"], "result": {
        "schema": "grader-result/1", "checks": [{"name": 1}], "score": {}}}}}
    (folder / "odd.json").write_text(json.dumps(odd))
    os.mkfifo(folder / "pipe.json")
    return folder


def test_summary_prints_the_table_and_skips_what_is_not_a_report(reports_folder, tmp_path):
    shown = grader("summary", reports_folder, "--html", tmp_path / "page.html")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "skipped notes.txt: not a .json file" in out
    assert "skipped broken.json: not readable as JSON" in out
    assert "skipped result.json: a single result of `grader check --json`, not a report" in out
    assert "skipped odd.json: chapter-1: its result lacks checks or a score" in out
    assert "skipped pipe.json: not a regular file" in out
    assert "note: 2 learners are named Sam" in out
    total = len(CHAPTER.checks)
    table = out.split("Checks passed, by learner and chapter\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split() == ["learner", "chapter-1"] and len(table) == 12
    rows = {line.split("  ")[0]: line.split("  ")[-1].strip() for line in table[1:]}
    assert rows["alice"] == rows["carol"] == rows["Sam (1)"] == rows["Sam (2)"] == f"{total}/{total}"
    assert rows["bob"] == f"0/{total}" and rows["dana"] == f"0/{total} (no load)" and rows["erin"] == "not graded"
    # 11 learners, of whom 7 were graded: 5 finished ones pass every check, bob and dana (no import) none.
    first = CHAPTER.checks[0].name
    assert re.search(rf"^ +5/7 +71% +\S+ +{first}$", out, re.M), out


def test_summary_page_shows_the_table_and_heatmap_in_a_browser_and_names_as_text(reports_folder, tmp_path,
                                                                                browser_tab):
    page = tmp_path / "page.html"
    grader("summary", reports_folder, "--html", page)
    assert not re.search(r"(src|href)\s*=\s*\"(?!data:)|@import|url\(", page.read_text()), "the page must load nothing"
    with serve(tmp_path) as url:  # the test browser lets only 127.0.0.1 through: anything from elsewhere shows
        assert browser_tab.open(url + "page.html") == [] and not browser_tab.blocked
    rows = browser_tab.evaluate("""[...document.querySelectorAll('#learners-table tbody tr')]
                                   .map(row => [...row.children].map(cell => cell.textContent))""")
    total = len(CHAPTER.checks)
    hostile = "<script>alert(1)</script><b>x</b>"
    done = f"{total}/{total}"
    assert sorted(rows) == sorted([["alice", done], ["bob", f"0/{total}"], ["carol", done],
                                   ["dana", f"0/{total} (no load)"], ["erin", "not graded"], ["frank", "not graded"],
                                   ["missing", "not graded"], ["notes.txt", "not graded"], ["Sam (1)", done],
                                   ["Sam (2)", done], [hostile, done]])
    heatmap = browser_tab.evaluate("""[...document.querySelectorAll('table.heatmap[data-chapter="chapter-1"] tbody tr')]
                                      .map(row => [row.dataset.check, row.lastElementChild.textContent,
                                                   getComputedStyle(row.lastElementChild).backgroundColor])""")
    assert [name for name, _, _ in heatmap] == [check.name for check in CHAPTER.checks]
    # 7 graded learners: the 5 copies of the solution pass every check, bob and dana none.
    assert {rate for _, rate, _ in heatmap} == {"5/7 (71%)"}
    assert all(colour.startswith("rgb(") and colour != "rgb(255, 255, 255)" for _, _, colour in heatmap)
    # The hostile name is text on the page, not markup: no script ran, no element was made.
    assert browser_tab.evaluate("document.querySelectorAll('script, b').length") == 0
    stuck = browser_tab.evaluate("document.getElementById('stuck').textContent")
    assert stuck == "No check stumps more than half the room."


# --- The warm grading server that batch and verify fork their runs from -------------------------


def test_a_warm_run_is_a_grader_check_of_its_own(tmp_path):
    """`check_apart(warm=True)` forks each run from a server that imported the grader once: the
    record is a new interpreter's, the run sees the environment it is given (not the server's),
    and a run that makes no record is reported with the grader's own words."""
    from grader.runner import check_apart

    only = ["create-user-returns-public-fields"]
    cold = check_apart(CHAPTER, SOLUTION, record=False, only=only)
    warm = check_apart(CHAPTER, SOLUTION, record=False, only=only, warm=True,
                       env={**os.environ, "GRADER_SANDBOX": "none"})
    assert [c["status"] for c in warm["checks"]] == [c["status"] for c in cold["checks"]] == ["passed"]
    assert warm["fingerprint"] == cold["fingerprint"]
    assert warm["sandbox"] == "none"
    starter = tmp_path / "starter"
    materialize(CHAPTER, starter)
    assert check_apart(CHAPTER, starter, record=False, only=only, warm=True)["checks"][0]["status"] != "passed"
    with pytest.raises(RuntimeError, match="did not produce a result.*grader: There is no folder .*nowhere"):
        check_apart(CHAPTER, tmp_path / "nowhere", record=False, warm=True)


def _in_session(session: int) -> list[str]:
    """The live processes of a session (the batch's own, its warm server and its runs)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry.name}/stat", "rb").read().rsplit(b")", 1)[1].split()
            command = open(f"/proc/{entry.name}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[3]) == session:
            found.append(f"{entry.name}: {command[:100]}")
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_batch_in_order_and_leaves_nothing_running(tmp_path):
    """Ctrl-C in a terminal (SIGINT to the whole foreground group): the batch says it stopped and
    exits 130, the reports already written stay valid, no further submission is started, and no
    process (the warm server, a run, an app) or scratch folder is left behind."""
    import signal
    import time

    from .conftest import leftovers

    room, out = tmp_path / "room", tmp_path / "reports"
    for number in range(8):
        shutil.copytree(SOLUTION, room / f"learner-{number}", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "GRADER_STATE_DIR": str(tmp_path / "state"), "TMPDIR": str(tmp_path)}
    batch = subprocess.Popen([sys.executable, "-m", "grader", "batch", "chapter-1", str(room), "--out", str(out),
                              "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.json")) and batch.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert batch.poll() is None, "the batch ended before it could be interrupted"
        os.killpg(batch.pid, signal.SIGINT)
        _, stderr = batch.communicate(timeout=60)
    finally:
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
    assert batch.returncode == 130, stderr
    assert "grader: stopped (SIGINT)" in stderr
    written = sorted(out.glob("*.json"))
    assert 1 <= len(written) < 8, [path.name for path in written]
    for path in written:
        validator().validate(json.loads(path.read_text()))
    deadline = time.monotonic() + 10
    while (_in_session(batch.pid) or leftovers(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_session(batch.pid) == [] and leftovers(tmp_path) == []
    assert not list(tmp_path.glob("grader-batch-*")) and not list(tmp_path.glob("grader-apart-*"))

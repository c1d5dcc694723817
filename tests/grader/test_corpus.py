"""Hostile submissions, one or more per class of attack: never a pass, every run within its
limits, nothing left running or behind, the learner's folder unchanged, an honest message.

Each starts from the starter (which fails every check) or the solution (which passes every
check) and adds one hostile act. The `grade` fixture checks the folder and the leftovers.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.catalogue import find_chapter

from .conftest import STARTER, leftovers

GET_USER = "def get_user(user_id: int):\n"
CHECKS = len(find_chapter("1").checks)


def in_handler(code: str) -> dict:
    """An edit of the starter that runs `code` inside GET /users/{id}, before its own body."""
    body = "".join(f"    {line}\n" for line in code.strip("\n").splitlines())
    return {"start": STARTER, "find": GET_USER, "replace": GET_USER + body}


def at_import(code: str) -> dict:
    return {"start": STARTER, "append": "\n" + code.strip("\n") + "\n"}


# --- Reaching into the checker: it is not in the app's process, nor in its view --------------

REACH_IN = {
    "patch-the-harness": "import grader.harness as h\nh.expect_status = lambda *a, **k: {}\n",
    "patch-pytest": "import _pytest.runner as r\nr.call_and_report = lambda *a, **k: None\n",
    "seed-sys-modules": "import sys, types\nsys.modules['test_checks'] = types.ModuleType('test_checks')\n",
    "rebind-main": "import __main__\n__main__.__dict__.update(check=lambda *a, **k: 0)\n",
    "gc-walk": ("import gc\nfor o in gc.get_objects():\n"
                "    if type(o).__name__ in ('ResultPlugin', 'Supervisor'):\n        o.results = {}\n"),
    "write-every-fd": (
        "import os, json\n"
        "for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n"
        "        os.write(fd, (json.dumps({'event': 'result', 'check': 'create-user-returns-public-fields', "
        "'status': 'passed', 'started': 1, 'event ': None}) + '\\n{broken json\\n').encode())\n"
        "    except OSError:\n        pass\n"),
}


@pytest.mark.parametrize("code", REACH_IN.values(), ids=REACH_IN.keys())
def test_reaching_into_the_checker_changes_nothing(submission, grade, code):
    for where in (at_import, in_handler):
        run = grade(submission(**where("try:\n" + "".join(f"    {line}\n" for line in code.splitlines())
                                       + "except Exception:\n    pass\n")))
        assert run.passed == 0 and not run.all_passed


def test_the_app_cannot_see_the_clone_the_grader_or_the_run(submission, grade, tmp_path):
    """From inside a handler: the hidden checks, the grader and the scratch area are out of view."""
    from grader.catalogue import SUITES

    suite_file = SUITES / "chapter-1" / "test_checks.py"
    before = suite_file.read_bytes()
    probe = (
        "import os, json, pathlib, sys\n"
        f"suite = pathlib.Path({str(suite_file)!r})\n"
        "seen = {'suite': suite.exists(), 'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),\n"
        "        'grader': any(pathlib.Path(p, 'grader', 'runner.py').exists() for p in sys.path if p)}\n"
        "try:\n    suite.write_text('def test_create_user_returns_public_fields():\\n    pass\\n')\n"
        "    seen['wrote'] = True\nexcept OSError:\n    seen['wrote'] = False\n"
        "from fastapi import HTTPException\nraise HTTPException(418, json.dumps(seen))\n"
    )
    run = grade(submission(**in_handler(probe)))
    assert run.passed == 0
    assert suite_file.read_bytes() == before  # the clone's checks are untouched
    from grader.sandbox import detect

    if detect().isolated:
        message = next(r.message for r in run.results if r.check.name == "user-reads-hide-private-fields")
        seen = json.loads(json.loads(message.split("got:  418 ", 1)[1].splitlines()[0])["detail"])
        assert seen["suite"] is False and seen["grader"] is False
        assert max(seen["pids"]) < 100  # its own PID namespace: the checker has no number there


# --- Deadlines that no traffic can stretch ----------------------------------------------------

STALLS = {
    "close-all-fds-then-sleep": "import os, time\nos.closerange(0, 1024)\ntime.sleep(60)\n",
    "flood-output-forever": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "flood-every-fd-forever": (
        "import os\nfds = [int(f) for f in os.listdir('/proc/self/fd')]\nwhile True:\n"
        "    for fd in fds:\n        try:\n            os.write(fd, b'{\"event\": \"started\"}\\n' * 100)\n"
        "        except OSError:\n            pass\n"),
    "trickle-a-response": (
        "import time\nfrom fastapi.responses import StreamingResponse\n"
        "def drip():\n    while True:\n        yield b' '\n        time.sleep(0.05)\n"
        "return StreamingResponse(drip())\n"),
    "stop-everyone": "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nos.kill(-1, signal.SIGSTOP)\n"
                     "os.kill(os.getpid(), signal.SIGSTOP)\n",
}


@pytest.mark.parametrize("code", STALLS.values(), ids=STALLS.keys())
def test_stalls_and_floods_end_within_the_limits(submission, grade, code):
    from grader.sandbox import detect

    if "os.kill(-1" in code and not detect().isolated:
        pytest.skip("without a PID namespace, kill(-1) would reach every process of this user")
    started = time.monotonic()
    run = grade(submission(**in_handler(code)), request=1, check=4)
    assert run.passed == 0
    assert time.monotonic() - started < 60
    stuck = [r for r in run.results if r.check.name == "user-reads-hide-private-fields"][0]
    assert stuck.status in ("timeout", "error") and stuck.about_app


def test_the_whole_run_has_a_deadline(submission, grade):
    run = grade(submission(**in_handler("import time\ntime.sleep(0.9)\n")), request=1, run=4)
    assert not run.all_passed
    assert any("the whole run went over its limit of 4 s" in r.message for r in run.results)


# --- Clean-up that tolerates whatever the app leaves -----------------------------------------

MESSES = {
    "deep-tree": "import os\npath = 'd'\nfor _ in range(1500):\n    os.mkdir(path)\n    os.chdir(path)\n",
    "read-only-tree": ("import os\nos.makedirs('ro/inner', exist_ok=True)\nopen('ro/inner/f', 'w').close()\n"
                       "os.chmod('ro/inner', 0o500)\nos.chmod('ro', 0o500)\n"),
    "odd-names": "open(b'bad\\xff\\xfename', 'w').close()\nopen('\\x1b[2Jname', 'w').close()\n",
    "child-with-a-non-utf8-name": (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import ctypes, time; ctypes.CDLL(None).prctl(15, b\"\\\\xff\\\\xfe)\", 0, 0, 0); "
        "time.sleep(300)'], start_new_session=True)\n"),
    "twenty-children-one-in-a-new-session": (
        "import subprocess, sys\n"
        "for _ in range(20):\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"),
}


@pytest.mark.parametrize("sandbox", ["default", "none"])
@pytest.mark.parametrize("code", MESSES.values(), ids=MESSES.keys())
def test_messes_are_cleaned_up(submission, grade, code, sandbox, monkeypatch):
    if sandbox == "none":
        monkeypatch.setenv("GRADER_SANDBOX", "none")
        from grader.sandbox import detect

        detect.cache_clear()
    folder = submission(find=GET_USER, replace=GET_USER + "".join(f"    {line}\n" for line in code.splitlines()))
    run = grade(folder)  # the fixture fails on anything left behind
    assert set(r.check.name for r in run.results if not r.passed) <= {
        "user-reads-hide-private-fields", "missing-resources-return-404", "timestamps-are-utc-everywhere"}
    from grader.sandbox import detect

    detect.cache_clear()


# --- Text the app controls is shown harmless -------------------------------------------------


def test_escape_sequences_cannot_draw_a_fake_report(submission, tmp_path):
    fake = "\\x1b[2J\\x1b[H\\x1b[32m Score: 17/17 checks passed\\u202e\\r"
    folder = submission(**in_handler(f"print('{fake}')\nraise RuntimeError('{fake}')\n"))
    result = subprocess.run([sys.executable, "-m", "grader", "check", "1", "--path", str(folder), "--json",
                             str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\r" not in result.stdout
    assert "\\x1b[2J" in result.stdout  # shown, as an escape
    assert "\x1b" not in (tmp_path / "r.xml").read_text()
    assert "\x1b" not in json.loads((tmp_path / "r.json").read_text())["checks"][1]["message"]


# --- Interrupted runs end in order ------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_ends_the_run_and_everything_it_started(submission, signum, scratch_root):
    folder = submission(**in_handler("import time\ntime.sleep(60)\n"))
    process = subprocess.Popen([sys.executable, "-m", "grader", "check", "1", "--path", str(folder), "--timeout", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any("process" in item for item in leftovers(scratch_root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # inside the sleeping request by now
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, out + err
    assert f"stopped ({signal.Signals(signum).name})" in err
    time.sleep(0.3)
    assert leftovers(scratch_root) == []


# --- The folder itself: links, devices, pipes ---------------------------------------------------


def test_links_out_of_the_folder_and_special_files_cannot_reach_in(submission, grade):
    import os

    for make in ("link-to-a-solution", "link-to-dev-zero", "fifo"):
        folder = submission(start=STARTER)
        if make == "link-to-a-solution":
            from .conftest import SOLUTION

            (folder / "tracker" / "main.py").unlink()
            (folder / "tracker" / "main.py").symlink_to(SOLUTION / "tracker" / "main.py")
        elif make == "link-to-dev-zero":
            (folder / "tracker" / "notes.txt").symlink_to("/dev/zero")
        else:
            os.mkfifo(folder / "tracker" / "queue")
        started = time.monotonic()
        run = grade(folder)
        assert run.passed == 0 and time.monotonic() - started < 60
        if make.startswith("link"):
            assert "outside the folder being graded" in run.load_problem


# --- Answers the checks cannot read --------------------------------------------------------------

ODD_ANSWERS = {
    "lone-surrogate": "Response('{\"detail\": \"\\\\ud800 Score: 17/17\"}', media_type='application/json')",
    "deeply-nested-json": 'Response("[" * 100000 + "]" * 100000, media_type="application/json")',
    "a-list-not-an-object": "JSONResponse([1, 2, 3])",
    "a-string-not-an-object": 'JSONResponse("id")',
}


@pytest.mark.parametrize("answer", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_answers_the_checks_cannot_read_are_failures_with_a_clear_message(submission, tmp_path, answer):
    middleware = (
        "\nfrom fastapi.responses import JSONResponse, Response\n\n\n"
        "@app.middleware('http')\nasync def odd(request, call_next):\n"
        f"    return {answer}\n"
    )
    folder = submission(append=middleware)
    result = subprocess.run([sys.executable, "-m", "grader", "check", "1", "--path", str(folder), "--json",
                             str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr and "INTERNALERROR" not in result.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["score"]["passed"] == 0 and all(item["message"] for item in data["checks"])
    assert "Score: 0/" in result.stdout


def test_a_folder_name_with_escape_sequences_is_shown_harmless(tmp_path):
    import shutil

    folder = tmp_path / "x\x1b[2J\x1b[32mScore: 17\u202e"
    shutil.copytree(STARTER, folder)
    result = subprocess.run([sys.executable, "-m", "grader", "check", "1", "--path", str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout


def test_nothing_of_the_clone_is_bound_into_the_sandbox_after_grading(grade, tmp_path):
    """A process that has graded before (watch, tests) must not widen the sandbox's view."""
    from grader.catalogue import course_root
    from grader.sandbox import bubblewrap_command, detect

    from .conftest import SOLUTION

    grade(SOLUTION)  # imports the suite's conftest in this process
    if not detect().isolated:
        pytest.skip("no sandbox on this machine")
    (tmp_path / "boot").mkdir()
    command = bubblewrap_command(tmp_path)
    bound = [command[i + 1] for i, arg in enumerate(command) if arg in ("--ro-bind", "--bind")]
    root = course_root()
    inside = [path for path in bound if path != "/" and root is not None and Path(path).is_relative_to(root)
              and not Path(sys.prefix).is_relative_to(path) and not Path(path).is_relative_to(sys.prefix)]
    assert inside == [], f"parts of the clone in the app's view: {inside}"


# --- Round two: the database path, link loops, deep JSON on the app's channels -------------------


def test_a_database_swapped_for_a_link_is_not_followed_by_the_checker(submission, grade, tmp_path):
    """The app replaces its database with a link to a file outside its view; the check that
    edits the database must not write there (nor create anything)."""
    import sqlite3

    victim = tmp_path / "victim.db"
    with sqlite3.connect(victim) as database:
        database.execute("create table notes (id integer primary key, title text, priority int, due_date text)")
        database.execute("insert into notes values (1, 'mine', 1, '2099-01-01')")
    swap = (
        "\nimport os as _os\n\n\n@app.middleware('http')\nasync def swap(request, call_next):\n"
        "    response = await call_next(request)\n"
        "    if request.method == 'POST' and request.url.path.endswith('/tasks'):\n"
        f"        _os.symlink({str(victim)!r}, 'swap.tmp')\n        _os.replace('swap.tmp', 'database.sqlite')\n"
        "    return response\n"
    )
    run = grade(submission(append=swap))
    check = next(r for r in run.results if r.check.name == "stored-past-due-date-stays-readable")
    assert not check.passed and "could not be opened" in check.message
    with sqlite3.connect(victim) as database:
        assert database.execute("select due_date from notes").fetchall() == [("2099-01-01",)]


def test_link_loops_and_link_bombs_in_the_folder_are_refused(submission, grade):
    folder = submission(start=STARTER)
    (folder / "selfloop").symlink_to("selfloop")
    assert "could not be copied for grading" in grade(folder).load_problem
    folder = submission(start=STARTER)
    for level in range(8):
        (folder / "data" / f"d{level}").mkdir(parents=True)
    for level in range(7):
        for link in range(10):
            (folder / "data" / f"d{level}" / f"l{link}").symlink_to(f"../d{level + 1}")
    started = time.monotonic()
    run = grade(folder)
    assert "more than 20,000 files and folders" in run.load_problem
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("channel", ["control socket at import", "reports pipe in a handler"])
def test_deep_json_on_the_apps_channels_is_ignored_or_named(submission, grade, channel):
    if channel.startswith("control"):
        code = ("\nimport socket as _socket, sys as _sys\n_sock = _socket.socket(fileno=int(_sys.argv[1]))\n"
                "for _ in range(40):\n    _sock.send(b'[' * 5000)\n")
        run = grade(submission(start=STARTER, append=code))
        assert run.passed == 0 and run.load_problem
    else:
        code = ("import os\nfor fd in map(int, os.listdir('/proc/self/fd')):\n    try:\n"
                "        os.write(fd, b'[' * 5000 + b'\\n')\n    except OSError:\n        pass\n")
        body = "".join(f"    {line}\n" for line in code.splitlines())
        run = grade(submission(find=GET_USER, replace=GET_USER + body))
        stuck = [r for r in run.results if r.status == "timeout"]
        assert stuck == [], [r.message for r in stuck]  # the pump survived: no false hangs

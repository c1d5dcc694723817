"""More of the robustness corpus: submissions that try to cheat, escape or leak.

Each starts from the starter (which fails every check) or the solution (which passes every
check) and adds one hostile act. The promise: zero false passes, and a message naming the cause.
"""

import os
import time
from pathlib import Path

from .conftest import STARTER, snapshot

GET_USER = "def get_user(user_id: int):\n"
STARTER_GET_USER = "def get_user(user_id: int):\n"


def test_forcing_passes_by_patching_the_harness_is_caught(submission, grade):
    folder = submission(start=STARTER, append=(
        "\nimport grader.harness as _h\n"
        "_h.expect_status = lambda *a, **k: {}\n"
        "_h.expect_fields = _h.expect_rejected = _h.expect_equal = lambda *a, **k: None\n"
    ))
    run = grade(folder)
    assert run.passed == 0
    assert "replaced parts of the grader or pytest" in run.integrity_problem
    assert "grader.harness.expect_status" in run.integrity_problem


def test_forcing_passes_by_patching_pytest_reports_is_caught(submission, grade):
    folder = submission(start=STARTER, find=STARTER_GET_USER, replace=STARTER_GET_USER + (
        "    import _pytest.runner\n"
        "    _pytest.runner.call_and_report = lambda item, when, log=True, **kw: None\n"
    ))
    run = grade(folder)
    assert run.passed == 0
    assert "_pytest.runner.call_and_report" in run.integrity_problem


def test_forged_events_on_the_grader_channel_void_the_run(submission, grade):
    folder = submission(start=STARTER, append=(
        "\nimport json as _json, os as _os, sys as _sys\n"
        "_fd = _json.loads(_sys.argv[1])['event_fd']\n"
        "for _name in ['create-user-returns-public-fields', 'user-reads-hide-private-fields']:\n"
        "    _os.write(_fd, (_json.dumps({'event': 'result', 'check': _name, 'status': 'passed', "
        "'message': '', 'duration': 0}) + '\\n').encode())\n"
    ))
    run = grade(folder)
    assert run.passed == 0
    assert "channel from your app's process was tampered with" in run.integrity_problem


def test_rewriting_the_hidden_checks_while_they_run_is_caught(submission, grade):
    folder = submission(start=STARTER, append=(
        "\nimport json as _json, sys as _sys, pathlib as _pl\n"
        "_suite = _pl.Path(_json.loads(_sys.argv[1])['suite_dir'])\n"
        "(_suite / 'test_checks.py').write_text('def test_create_user_returns_public_fields():\\n    pass\\n')\n"
    ))
    run = grade(folder)
    assert run.passed == 0
    assert "hidden checks were changed while they ran" in run.integrity_problem


def test_a_tampered_suite_in_the_clone_is_refused(tmp_path, grade, monkeypatch):
    from grader import catalogue

    chapter = catalogue.find_chapter("1")
    fake_suite = tmp_path / "chapter-1"
    import shutil

    shutil.copytree(chapter.suite_dir, fake_suite, ignore=shutil.ignore_patterns("__pycache__"))
    (fake_suite / "test_checks.py").write_text("def test_create_user_returns_public_fields():\n    pass\n")
    from grader.runner import Runner

    tampered = catalogue.Chapter(chapter.number, chapter.title, chapter.package, chapter.app_module,
                                 fake_suite, chapter.checks)
    run = Runner(tampered, STARTER).run()
    assert run.passed == 0 and not run.all_passed
    assert "differ from the grader's manifest" in run.integrity_problem
    assert all(result.status == "not-run" for result in run.results)


def test_child_processes_are_all_ended_even_those_in_a_new_session(submission, grade, tmp_path):
    marker = tmp_path / "pids"
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    import subprocess, sys\n"
        "    kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']) for _ in range(20)]\n"
        "    kids.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True))\n"
        f"    open({str(marker)!r}, 'a').write(' '.join(str(k.pid) for k in kids) + ' ')\n"
    ))
    run = grade(folder)
    assert run.all_passed  # starting processes is not wrong in itself
    pids = [int(pid) for pid in marker.read_text().split()]
    assert len(pids) >= 21
    time.sleep(0.2)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert alive == [], f"processes left running after grading: {alive}"


def test_writes_to_relative_paths_and_temp_files_stay_out_of_the_folder(submission, grade):
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    import tempfile\n"
        "    open('scribble.txt', 'w').write('x')\n"
        "    tempfile.NamedTemporaryFile(delete=False).write(b'x')\n"
    ))
    before = snapshot(folder)
    run = grade(folder)
    assert run.all_passed
    assert snapshot(folder) == before


def test_network_calls_are_blocked_with_a_clear_message(submission, grade):
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    import socket\n"
        "    socket.create_connection(('203.0.113.7', 80), timeout=5)\n"
    ))
    run = grade(folder)
    failing = {r.check.name: r for r in run.results if not r.passed}
    assert set(failing) == {"user-reads-hide-private-fields", "missing-resources-return-404"}
    assert "the grader blocks network access while checking (203.0.113.7:80)" in failing[
        "user-reads-hide-private-fields"].message


def test_name_lookups_are_blocked_too(submission, grade):
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    import urllib.request\n"
        "    urllib.request.urlopen('http://example.com/', timeout=5)\n"
    ))
    run = grade(folder)
    message = next(r.message for r in run.results if r.check.name == "user-reads-hide-private-fields")
    assert "name lookups are blocked while checking" in message


def test_a_thread_that_never_ends_does_not_hold_the_run(submission, grade):
    folder = submission(append=(
        "\nimport threading, time as _time\n"
        "threading.Thread(target=lambda: _time.sleep(10_000)).start()\n"
    ))
    started = time.monotonic()
    run = grade(folder)
    assert run.all_passed
    assert time.monotonic() - started < 30


def test_endless_recursion_in_a_handler_is_named(submission, grade):
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    def down(n):\n        return down(n + 1)\n    down(0)\n"
    ))
    run = grade(folder)
    message = next(r.message for r in run.results if r.check.name == "user-reads-hide-private-fields")
    assert "RecursionError" in message and "in down" in message


def test_a_check_stuck_outside_any_request_times_out(submission, grade):
    # An endless loop in the app's startup (lifespan) happens before any request is sent.
    folder = submission(
        find='app = FastAPI(title="Team task tracker")',
        replace=(
            "from contextlib import asynccontextmanager\n\n\n"
            "@asynccontextmanager\n"
            "async def lifespan(app):\n"
            "    while True:\n"
            "        pass\n"
            "    yield\n\n\n"
            'app = FastAPI(title="Team task tracker", lifespan=lifespan)'
        ),
    )
    run = grade(folder, check=2)
    assert run.passed == 0
    assert all(result.status == "timeout" for result in run.results[:2])
    assert "did not finish within 2 s" in run.results[0].message


def test_a_slow_import_within_the_limit_still_passes(submission, grade):
    run = grade(submission(append="\nimport time as _t\n_t.sleep(1.5)\n"))
    assert run.all_passed


def test_the_clone_environment_is_not_inherited_by_the_learners_code(submission, grade, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    folder = submission(append="\nimport os as _os\nassert _os.environ['PYTHONDONTWRITEBYTECODE'] == '1'\n")
    run = grade(folder)
    assert run.all_passed
    assert os.environ["PYTHONPATH"] == "/nonexistent"


def test_deleting_the_hidden_checks_while_they_run_is_caught(submission, grade):
    folder = submission(start=STARTER, find=STARTER_GET_USER, replace=STARTER_GET_USER + (
        "    import json as _json, sys as _sys, pathlib as _pl\n"
        "    for _f in _pl.Path(_json.loads(_sys.argv[1])['suite_dir']).iterdir():\n"
        "        _f.unlink() if _f.is_file() else None\n"
    ))
    run = grade(folder)
    assert run.passed == 0
    assert "hidden checks were changed while they ran (missing:" in run.integrity_problem


def test_deleting_its_own_files_is_the_learners_own_doing_and_is_reported(submission, grade):
    # The app deletes its own main.py, then hangs: the restarted worker cannot import it.
    folder = submission(find=GET_USER, replace=GET_USER + (
        "    import pathlib\n"
        "    pathlib.Path(__file__).unlink(missing_ok=True)\n"
        "    while True:\n        pass\n"
    ))
    run = grade(folder, request=1)
    assert not run.all_passed
    assert run.results[1].status == "timeout"
    assert "No module named 'tracker.main'" in run.load_problem
    assert not (folder / "tracker" / "main.py").exists()  # gone by the app's hand, not the grader's

"""Broken and hostile submissions: each must end in a clear message, never in a pass."""

import re

from grader.runner import ERROR, FAILED, TIMEOUT

from .conftest import snapshot

GET_USER = "def get_user(user_id: int):\n"
CREATE_USER = "def create_user(payload: UserCreate):\n"
USER_CHECKS = {"user-reads-hide-private-fields", "missing-resources-return-404"}


def statuses(run):
    return {result.check.name: result.status for result in run.results}


def test_solution_passes_and_starter_fails(grade):
    from .conftest import SOLUTION, STARTER

    assert grade(SOLUTION).all_passed
    starter = grade(STARTER)
    assert starter.passed == 0
    assert not starter.all_passed


# --- Problems while importing the learner's module ---------------------------------------


def test_syntax_error_names_file_and_line(submission, grade):
    folder = submission(append="\ndef broken(:\n    pass\n")
    run = grade(folder)
    assert not run.all_passed and run.passed == 0
    assert re.search(r"SyntaxError in tracker/main.py, line \d+", run.load_problem)
    assert "def broken(:" in run.load_problem
    assert all(result.status == "not-run" for result in run.results)


def test_import_error_names_the_missing_module(submission, grade):
    run = grade(submission(append="\nimport no_such_module_here\n"))
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in run.load_problem
    assert re.search(r"tracker/main.py, line \d+, in <module>", run.load_problem)


def test_exception_at_import_shows_the_learners_line(submission, grade):
    run = grade(submission(append="\nraise RuntimeError('boom at import')\n"))
    assert "RuntimeError: boom at import" in run.load_problem
    assert "raise RuntimeError('boom at import')" in run.load_problem


def test_sys_exit_at_import_is_reported(submission, grade):
    run = grade(submission(append="\nimport sys\nsys.exit(3)\n"))
    assert "called sys.exit(3) while tracker.main was being imported" in run.load_problem
    assert run.passed == 0


def test_os_exit_at_import_is_reported(submission, grade):
    run = grade(submission(append="\nimport os\nos._exit(4)\n"))
    assert "exited with status 4" in run.load_problem
    assert "importing tracker.main" in run.load_problem


def test_endless_loop_at_import_times_out(submission, grade):
    run = grade(submission(append="\nwhile True:\n    pass\n"), load=2)
    assert "did not finish within 2 s" in run.load_problem
    assert run.passed == 0


def test_a_missing_name_the_checks_need_is_explained(submission, grade):
    run = grade(submission(append="\ndel Base\n"))
    assert run.passed == 0
    assert all(result.status == ERROR for result in run.results)
    assert "tracker.main has no `Base`" in run.results[0].message
    assert "Keep this name from the starter code" in run.results[0].message


# --- Problems while handling a request -----------------------------------------------------


def test_hung_sync_endpoint_fails_only_its_own_checks(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    while True:\n        pass\n"), request=1)
    result = statuses(run)
    assert {name for name, status in result.items() if status != "passed"} == USER_CHECKS
    assert all(result[name] == TIMEOUT for name in USER_CHECKS)
    messages = {r.check.name: r.message for r in run.results}
    assert messages["user-reads-hide-private-fields"].startswith("GET /users/1 did not answer within 1 s")
    assert messages["missing-resources-return-404"].startswith("GET /users/999 did not answer within 1 s")
    assert run.workers == 3  # the first worker and one restart after each kill


def test_hung_async_endpoint_fails_only_its_own_checks(submission, grade):
    folder = submission(find=GET_USER, replace="async def get_user(user_id: int):\n    while True:\n        pass\n")
    run = grade(folder, request=1)
    assert {name for name, status in statuses(run).items() if status != "passed"} == USER_CHECKS
    assert all(r.status == TIMEOUT for r in run.results if not r.passed)


def test_os_exit_in_handler_fails_that_check_and_the_rest_run(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    import os\n    os._exit(7)\n"))
    result = statuses(run)
    assert {name for name, status in result.items() if status != "passed"} == USER_CHECKS
    message = next(r.message for r in run.results if r.check.name == "user-reads-hide-private-fields")
    assert "exited with status 7" in message and "GET /users/1" in message


def test_sys_exit_in_handler_is_a_failure_with_its_cause(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    raise SystemExit(5)\n"))
    failing = [r for r in run.results if not r.passed]
    assert {r.check.name for r in failing} == USER_CHECKS
    assert all("called sys.exit(5)" in r.message for r in failing)


def test_exception_in_handler_shows_the_learners_traceback(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    raise KeyError('oops')\n"))
    message = next(r.message for r in run.results if r.check.name == "user-reads-hide-private-fields")
    assert "Your app crashed instead of answering: KeyError: 'oops'" in message
    assert re.search(r"tracker/main.py, line \d+, in get_user: raise KeyError\('oops'\)", message)
    assert "test_checks" not in message  # the check's own code is never shown


def test_memory_hog_fails_its_check_not_the_machine(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    hog = bytearray(8 * 1024**3)\n"))
    failing = {r.check.name: r for r in run.results if not r.passed}
    assert set(failing) == USER_CHECKS
    assert "MemoryError" in failing["user-reads-hide-private-fields"].message


def test_huge_output_does_not_break_the_run(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    print('x' * 50_000_000)\n"))
    assert run.all_passed


# --- The learner's folder cannot change the rules, and is left untouched ------------------


EVERYTHING_PASSES = '''
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
'''


def test_learner_conftest_and_ini_are_ignored(submission, grade):
    from .conftest import STARTER

    folder = submission(start=STARTER, files={
        "conftest.py": EVERYTHING_PASSES,
        "tracker/conftest.py": EVERYTHING_PASSES,
        "pytest.ini": "[pytest]\naddopts = -p no:python -x\npython_functions = nothing_matches\n",
        "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '--co'\n",
    })
    run = grade(folder)
    assert run.passed == 0
    assert all(result.status in (FAILED, ERROR) for result in run.results)


def test_learner_environment_cannot_reconfigure_pytest(submission, grade, monkeypatch):
    from .conftest import STARTER

    monkeypatch.setenv("PYTEST_ADDOPTS", "--co -p no:python")
    monkeypatch.setenv("PYTEST_PLUGINS", "nonexistent_plugin")
    run = grade(submission(start=STARTER))
    assert run.passed == 0 and run.load_problem is None


def test_grading_writes_nothing_into_the_learners_folder(submission, grade):
    from .conftest import STARTER

    folder = submission(start=STARTER)
    before = snapshot(folder)
    grade(folder)
    assert snapshot(folder) == before


def test_a_folder_without_the_app_is_explained(tmp_path, grade):
    folder = tmp_path / "empty-exercise"
    (folder / "tracker").mkdir(parents=True)
    (folder / "tracker" / "main.py").write_text('"""Nothing here yet."""\n')
    run = grade(folder)
    assert run.passed == 0
    assert "tracker.main has no `app`" in run.results[0].message

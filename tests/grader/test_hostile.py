"""Broken submissions, as honest learners write them: each ends in a clear message, never a pass.

Every test here also checks (through the `grade` fixture) that the learner's folder is left
exactly as it was, and that no process of the run is left running.
"""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from grader.runner import ERROR, FAILED, NOT_RUN, TIMEOUT
from grader.sandbox import detect

GET_USER = "def get_user(user_id: int):\n"
# The checks that send GET /users/{id}: a fault in get_user fails these, and only these.
USER_CHECKS = {"user-reads-hide-private-fields", "missing-resources-return-404", "timestamps-are-utc-everywhere"}


def statuses(run):
    return {result.check.name: result.status for result in run.results}


def failing(run):
    return {result.check.name: result for result in run.results if not result.passed}


def test_solution_passes_and_starter_fails(grade):
    from .conftest import SOLUTION, STARTER

    solved = grade(SOLUTION)
    assert solved.all_passed and solved.workers == 1
    starter = grade(STARTER)
    assert starter.passed == 0 and not starter.all_passed


# --- Problems while importing the learner's module ---------------------------------------


def test_syntax_error_names_file_and_line(submission, grade):
    run = grade(submission(append="\ndef broken(:\n    pass\n"))
    assert not run.all_passed and run.passed == 0
    assert re.search(r"SyntaxError in tracker/main.py, line \d+", run.load_problem)
    assert "def broken(:" in run.load_problem
    assert all(result.status == NOT_RUN for result in run.results)


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


def test_a_missing_name_the_checks_need_is_explained_once(submission, grade):
    run = grade(submission(append="\ndel Base\n"))
    assert run.passed == 0
    assert "tracker/main.py has no `Base`" in run.load_problem
    assert "Keep this name from the starter code" in run.load_problem
    assert all(result.status == NOT_RUN for result in run.results)


def test_an_engine_that_is_a_function_is_named_as_such(submission, grade):
    run = grade(submission(
        find='engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False})',
        replace='def engine():\n    return create_engine(DATABASE_URL, connect_args={"check_same_thread": False})\n\n\n'
                'real_engine = engine()',
        also=[("sessionmaker(bind=engine,", "sessionmaker(bind=real_engine,"),
              ("Base.metadata.create_all(engine)", "Base.metadata.create_all(real_engine)")]))
    assert "`engine` in tracker/main.py is a function (engine)" in run.load_problem
    assert "the Engine that create_engine() returns" in run.load_problem
    assert "grader bug" not in run.load_problem


def test_an_app_that_is_the_fastapi_class_is_named_as_such(submission, grade):
    run = grade(submission(find='app = FastAPI(title="Team task tracker")',
                           replace='app = FastAPI\nreal = FastAPI(title="Team task tracker")',
                           also=[("@app.", "@real.")]))
    assert "`app` in tracker/main.py is the class FastAPI itself" in run.load_problem
    assert "`app = FastAPI(...)`" in run.load_problem


def test_a_folder_without_the_app_is_explained(tmp_path, grade):
    folder = tmp_path / "empty-exercise"
    (folder / "tracker").mkdir(parents=True)
    (folder / "tracker" / "main.py").write_text('"""Nothing here yet."""\n')
    run = grade(folder)
    assert run.passed == 0
    assert "tracker/main.py has no `app`" in run.load_problem


# --- Problems while handling a request -----------------------------------------------------


def test_hung_sync_endpoint_fails_only_its_own_checks_as_a_hang(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    while True:\n        pass\n"), request=1)
    result = failing(run)
    assert set(result) == USER_CHECKS
    assert all(item.status == TIMEOUT and item.about_app for item in result.values())
    assert result["user-reads-hide-private-fields"].message.startswith("GET /users/1 did not answer within 1 s")
    assert result["missing-resources-return-404"].message.startswith("GET /users/999 did not answer within 1 s")
    assert run.workers == 4  # the first host, and a new one after each hang


def test_hung_async_endpoint_fails_only_its_own_checks(submission, grade):
    folder = submission(find=GET_USER, replace="async def get_user(user_id: int):\n    while True:\n        pass\n")
    run = grade(folder, request=1)
    assert set(failing(run)) == USER_CHECKS
    assert all(result.status == TIMEOUT for result in failing(run).values())


def test_os_exit_in_handler_fails_that_check_and_the_rest_run(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    import os\n    os._exit(7)\n"))
    result = failing(run)
    assert set(result) == USER_CHECKS
    message = result["user-reads-hide-private-fields"].message
    assert "exited with status 7 while handling GET /users/1" in message
    assert result["user-reads-hide-private-fields"].about_app


def test_sys_exit_in_handler_is_a_crash_with_its_cause(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    raise SystemExit(5)\n"))
    result = failing(run)
    assert set(result) == USER_CHECKS
    assert all("called sys.exit(5)" in item.message for item in result.values())


def test_exception_in_handler_shows_the_learners_traceback(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    raise KeyError('oops')\n"))
    message = failing(run)["user-reads-hide-private-fields"].message
    assert "Your app crashed instead of answering: KeyError: 'oops'" in message
    assert re.search(r"tracker/main.py, line \d+, in get_user: raise KeyError\('oops'\)", message)
    assert "sent: GET /users/1" in message
    assert "test_checks" not in message  # the check's own code is never shown


def test_memory_hog_fails_its_check_not_the_machine(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    hog = bytearray(8 * 1024**3)\n"))
    assert set(failing(run)) == USER_CHECKS
    assert "MemoryError" in failing(run)["user-reads-hide-private-fields"].message


def test_huge_output_does_not_break_the_run(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    print('x' * 50_000_000)\n"))
    assert run.all_passed


def test_endless_recursion_in_a_handler_is_named(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + "    def down(n):\n        return down(n + 1)\n    down(0)\n"))
    message = failing(run)["user-reads-hide-private-fields"].message
    assert "RecursionError" in message and "in down" in message


def with_lifespan(submission, body: str):
    """The solution with a lifespan whose startup runs `body` (indented lines) before it yields."""
    return submission(
        find='app = FastAPI(title="Team task tracker")',
        replace=("from contextlib import asynccontextmanager\n\n\n@asynccontextmanager\nasync def lifespan(app):\n"
                 f"{body}    yield\n\n\n"
                 'app = FastAPI(title="Team task tracker", lifespan=lifespan)'),
    )


def test_an_endless_startup_is_reported_as_the_startup(submission, grade):
    run = grade(with_lifespan(submission, "    while True:\n        pass\n"), startup=1)
    assert run.passed == 0
    assert all(result.status == TIMEOUT for result in run.results)
    assert "did not finish starting (its lifespan) within 1 s" in run.results[0].message


def test_a_failing_startup_names_the_learners_line(submission, grade):
    run = grade(with_lifespan(submission, "    raise RuntimeError('no config')\n"))
    assert run.passed == 0
    message = run.results[0].message
    assert "startup (its lifespan) failed: RuntimeError: no config" in message
    assert re.search(r"tracker/main.py, line \d+, in lifespan", message)


# --- What the host does once for every app process ----------------------------------------------

CREATE_ALL = "Base.metadata.create_all(engine)\n"


def test_tables_that_fail_only_in_a_checks_database_are_reported_in_each_check(submission, grade):
    """The host makes the tables once for every app process to copy; when that fails, each
    app process makes its own, and each check says why they could not be made."""
    listener = (
        "from sqlalchemy import event\n\n\n"
        "@event.listens_for(Base.metadata, 'after_create')\n"
        "def only_in_my_file(target, connection, **kw):\n"
        "    name = connection.exec_driver_sql('PRAGMA database_list').fetchall()[0][2]\n"
        "    if not name.endswith('tracker.db'):\n"
        "        raise RuntimeError('tables refused in ' + name.rsplit('/', 1)[-1])\n\n\n"
    )
    run = grade(submission(find=CREATE_ALL, replace=listener + CREATE_ALL))
    assert run.load_problem is None and run.passed == 0
    for result in run.results:
        assert "could not create its tables" in result.message, result.message
        assert "RuntimeError: tables refused in database.sqlite" in result.message
        assert re.search(r"tracker/main.py, line \d+, in only_in_my_file", result.message)


def test_a_broken_mapping_is_reported_in_sqlalchemys_own_words(submission, grade):
    """The host configures the mappers once only when that works: a mapping that cannot be
    configured reaches the learner as SQLAlchemy's first error, not its later summary."""
    run = grade(submission(find="    hashed_password: Mapped[str] = mapped_column(String(128))\n",
                           replace="    hashed_password: Mapped[str] = mapped_column(String(128))\n"
                                   "    ghosts = relationship('Ghost')\n",
                           also=[("from sqlalchemy.orm import ", "from sqlalchemy.orm import relationship, ")]))
    message = failing(run)["user-reads-hide-private-fields"].message
    assert "expression 'Ghost' failed to locate a name" in message, message
    assert "One or more mappers failed" not in message


def test_a_slow_import_within_the_limit_still_passes(submission, grade):
    assert grade(submission(append="\nimport time as _t\n_t.sleep(1.5)\n")).all_passed


def test_a_thread_that_never_ends_does_not_hold_the_run(submission, grade):
    run = grade(submission(append="\nimport threading, time as _time\n"
                                  "threading.Thread(target=lambda: _time.sleep(10_000)).start()\n"))
    assert run.all_passed and run.seconds < 30


def test_network_calls_fail_fast_and_say_the_checks_are_offline(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + (
        "    import socket\n    socket.create_connection(('203.0.113.7', 80), timeout=5)\n")))
    message = failing(run)["user-reads-hide-private-fields"].message
    assert "without network access" in message
    assert failing(run)["user-reads-hide-private-fields"].status == ERROR


def test_name_lookups_fail_too(submission, grade):
    run = grade(submission(find=GET_USER, replace=GET_USER + (
        "    import urllib.request\n    urllib.request.urlopen('http://example.com/', timeout=5)\n")))
    message = failing(run)["user-reads-hide-private-fields"].message
    assert "without network access" in message


# --- Honest code that must not be mistaken for a problem ---------------------------------------


def test_gettext_install_is_honest_code(submission, grade):
    assert grade(submission(append="\nimport gettext\ngettext.install('tracker')\n")).all_passed


def _folder_outside_hidden_temp() -> Path | None:
    """A new folder that is not under /tmp, /var/tmp, /dev or home, where this user may write."""
    candidates = [os.environ.get("XDG_RUNTIME_DIR", ""), "/run", "/var/cache", "/srv", "/opt"]
    for parent in filter(None, candidates):
        parent_path = Path(parent)
        if any(parent_path.is_relative_to(root) for root in (Path("/tmp"), Path("/var/tmp"), Path("/dev"), Path.home())):
            continue
        try:
            return Path(tempfile.mkdtemp(prefix="grader-test-tmp-", dir=parent_path))
        except OSError:
            continue
    return None


def test_a_temp_folder_outside_tmp_is_hidden_from_the_app_too(submission, grade, monkeypatch):
    """TMPDIR holds other runs' scratch areas (a batch's other learners) and the socket of the
    warm server that `grader batch` forks its runs from: a sandboxed app must not see it,
    wherever it points, not only under /tmp."""
    if not detect().isolated:
        pytest.skip("no sandbox on this machine: nothing is hidden from the app")
    scratch = _folder_outside_hidden_temp()
    if scratch is None:
        pytest.skip("no folder outside /tmp, /var/tmp and home to put TMPDIR in")
    try:
        marker = scratch / "another-learners-file"
        marker.write_text("not yours\n")
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        monkeypatch.setenv("TMPDIR", str(scratch))
        run = grade(submission(append=f"\nimport os as _os\nif _os.path.exists({str(marker)!r}):\n"
                                      f"    raise RuntimeError('the app saw ' + {str(marker)!r})\n"))
        assert run.load_problem is None, run.load_problem
        assert run.all_passed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_database_next_to_the_module_leaves_the_learners_own_database_alone(submission, grade):
    import sqlite3

    folder = submission(find='DATABASE_URL = "sqlite:///./tracker.db"', replace=(
        'from pathlib import Path\nDATABASE_URL = f"sqlite:///{Path(__file__).parent / \'tracker.db\'}"'))
    own = sqlite3.connect(folder / "tracker" / "tracker.db")
    own.execute("create table notes (text varchar)")
    own.execute("insert into notes values ('my own data')")
    own.commit()
    own.close()
    run = grade(folder)  # the fixture also checks that no file in the folder changed
    assert run.all_passed
    assert sqlite3.connect(folder / "tracker" / "tracker.db").execute("select text from notes").fetchall() == [
        ("my own data",)]


def test_a_package_linked_from_outside_is_refused_with_the_reason(tmp_path, grade):
    import shutil

    from .conftest import SOLUTION

    elsewhere = tmp_path / "my-work" / "tracker"
    shutil.copytree(SOLUTION / "tracker", elsewhere, ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "exercise"
    folder.mkdir()
    (folder / "tracker").symlink_to(elsewhere, target_is_directory=True)
    run = grade(folder)
    assert run.passed == 0
    assert "tracker is a symbolic link to" in run.load_problem and "outside the folder being graded" in run.load_problem
    assert "--path" in run.load_problem


def test_a_link_inside_the_folder_is_followed(submission, grade):
    folder = submission()
    main = folder / "tracker" / "main.py"
    (folder / "tracker" / "real_main.py").write_text(main.read_text())
    main.unlink()
    main.symlink_to("real_main.py")
    assert grade(folder).all_passed


def test_learner_conftest_and_ini_are_ignored(submission, grade):
    from .conftest import STARTER

    everything_passes = (
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n")
    folder = submission(start=STARTER, files={
        "conftest.py": everything_passes,
        "tracker/conftest.py": everything_passes,
        "pytest.ini": "[pytest]\naddopts = -p no:python -x\npython_functions = nothing_matches\n",
        "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '--co'\n",
    })
    run = grade(folder)
    assert run.passed == 0
    assert all(result.status in (FAILED, ERROR, NOT_RUN) for result in run.results)


def test_learner_environment_cannot_reconfigure_pytest_or_the_app(submission, grade, monkeypatch):
    from .conftest import STARTER

    monkeypatch.setenv("PYTEST_ADDOPTS", "--co -p no:python")
    monkeypatch.setenv("PYTEST_PLUGINS", "nonexistent_plugin")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    run = grade(submission(start=STARTER))
    assert run.passed == 0 and run.load_problem is None

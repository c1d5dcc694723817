"""Grading from a notebook: `check()`, its HTML and text, and the `%grader` magic."""

import html
import os
import shlex
import subprocess
import sys

import pytest

from grader.notebook import NotebookResult, check
from grader.runner import FAILED, NOT_RUN, CheckResult, RunResult

from .conftest import CHAPTER, SOLUTION, STARTER

TOTAL = len(CHAPTER.checks)


@pytest.fixture(scope="module")
def solved():
    return check("1", path=SOLUTION)


@pytest.fixture(scope="module")
def started():
    return check("chapter-1", path=str(STARTER))


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """A real IPython shell with its history in a temporary folder."""
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    from IPython.testing.tools import default_config

    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    ipython = interactiveshell.InteractiveShell.instance(config=default_config())
    ipython.run_line_magic("load_ext", "grader.notebook")
    yield ipython
    interactiveshell.InteractiveShell.clear_instance()
    if saved is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = saved


def test_solution_passes_and_the_table_names_every_check(solved):
    assert solved.all_passed and solved.error is None
    page = solved._repr_html_()
    assert f"Score: {TOTAL}/{TOTAL} checks passed" in page
    assert page.index("Score:") < page.index("<table")
    assert all(f"<code>{check.name}</code>" in page for check in CHAPTER.checks)
    assert "<pre" not in page and "Hint:" not in page
    assert f"Score: {TOTAL}/{TOTAL} checks passed" in repr(solved)


def test_starter_shows_messages_escaped_and_the_first_rung(started):
    page = started._repr_html_()
    assert not started.all_passed
    assert f"Score: 0/{TOTAL} checks passed" in page
    first = CHAPTER.checks[0]
    assert f"<strong>What is wrong:</strong> {html.escape(first.lesson)}" in page
    assert "<strong>Read:</strong> “What a client may see: UserPublic”" in page
    for result in started.run.results:
        assert f"<pre style=\"{_pre_style()}\">{html.escape(result.message)}</pre>" in page
    assert "<script" not in page
    text = repr(started)
    assert f"What is wrong: {first.lesson[:30]}" in text and "check('chapter-1', path=" in text


def _pre_style():
    from grader.notebook import _PRE

    return _PRE


def _fake_run(message: str, load_problem: str | None = None) -> RunResult:
    status = NOT_RUN if load_problem else FAILED
    results = [CheckResult(check, status, message) for check in CHAPTER.checks]
    return RunResult(CHAPTER, STARTER, results, load_problem=load_problem, seconds=0.5)


def test_messages_and_load_problems_are_html_escaped():
    text = repr(NotebookResult(_fake_run("got: 500 <script>alert('x')</script> & more")))
    assert "<script>" in text  # the plain text for terminals is not escaped; the HTML is
    page = NotebookResult(_fake_run("got: 500 <script>alert('x')</script> & more"))._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page

    page = NotebookResult(_fake_run("Not run", load_problem="SyntaxError at <module>"))._repr_html_()
    assert page.count("SyntaxError at &lt;module&gt;") == 1
    assert page.index("SyntaxError") < page.index("<table")
    assert "Fix the first failing check" not in page  # the load problem is what to fix


def test_a_run_without_a_sandbox_says_so_in_the_table_too():
    run = _fake_run("got: 200")
    run.sandbox, run.sandbox_detail = "none", "this system does not allow namespaces (bwrap: <denied>)"
    note = "Note: your app ran without a sandbox: this system does not allow namespaces (bwrap: &lt;denied&gt;)."
    assert note in NotebookResult(run)._repr_html_()
    assert "Note: your app ran without a sandbox: this system" in repr(NotebookResult(run))
    run.sandbox = "bubblewrap"
    assert "without a sandbox" not in NotebookResult(run)._repr_html_()


def test_unknown_chapter_and_missing_folder_are_short_messages(tmp_path):
    result = check("chapter-99")
    assert result.run is None and not result.all_passed
    assert "There is no chapter &#x27;chapter-99&#x27;" in result._repr_html_()
    assert repr(result).startswith("grader: There is no chapter") and "Traceback" not in repr(result)
    assert "There is no folder" in check("1", path=tmp_path / "nowhere").error
    assert "positive" in check("1", path=SOLUTION, timeout=0).error


def test_the_magic_grades_and_displays_a_table(shell):
    line = f"check 1 --path {shlex.quote(str(STARTER))} --timeout 5"
    result = shell.run_line_magic("grader", line)
    assert isinstance(result, NotebookResult) and result.run.passed == 0
    data, _ = shell.display_formatter.format(result)
    assert f"Score: 0/{TOTAL} checks passed" in data["text/html"]
    assert f"<code>%grader {html.escape(line)}</code>" in data["text/html"]
    assert f"Score: 0/{TOTAL} checks passed" in data["text/plain"]


def test_the_magic_runs_only_the_checks_named(shell):
    first, second = CHAPTER.checks[0].name, CHAPTER.checks[1].name
    result = shell.run_line_magic("grader", f"check 1 --path {shlex.quote(str(STARTER))} --only {first} "
                                            f"--only {second} --no-record")
    assert [r.check.name for r in result.run.results] == [first, second]
    assert not any(r.passed for r in result.run.results)
    assert "Score: 0/2 checks passed" in result._repr_html_()


@pytest.mark.parametrize("line, expected", [
    ("check", "the following arguments are required: CHAPTER"),
    ("check 1 --only no-such-check", "chapter-1 has no check named 'no-such-check'"),
    ("frobnicate 1", "invalid choice"),
    ("check 1 --timeout soon", "invalid float value"),
    ("check 1 --colour", "unrecognized arguments: --colour"),
    ("check 99", "There is no chapter '99'"),
    ("check '1", "No closing quotation"),
    ("", "usage: %grader"),
])
def test_the_magic_shows_usage_errors_as_messages(shell, line, expected):
    result = shell.run_line_magic("grader", line)
    assert isinstance(result, NotebookResult) and result.run is None
    assert expected in result.error, result.error
    assert "Traceback" not in result._repr_html_()


def test_the_magic_runs_the_doctor(shell, capsys):
    assert shell.run_line_magic("grader", "doctor") is None
    assert "✔ Python 3." in capsys.readouterr().out


def test_the_magic_help_prints_and_returns_nothing(shell, capsys):
    assert shell.run_line_magic("grader", "check --help") is None
    assert "--path" in capsys.readouterr().out


def test_the_module_imports_without_ipython():
    blocked = "import sys; sys.modules['IPython'] = None; import grader.notebook; print('imported')"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "imported", result.stderr


def test_the_notebook_table_climbs_the_hint_ladder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_STATE_DIR", str(tmp_path / "state"))
    attempt = tmp_path / "attempt"
    import shutil

    shutil.copytree(STARTER, attempt)
    first = check("1", path=attempt)._repr_html_()
    assert "runs in a row" not in first and "<strong>Hint:</strong>" not in first
    second = check("1", path=attempt)._repr_html_()
    assert ("<strong>Hint:</strong> Give the route <code>response_model=UserPublic</code> and "
            "<code>status_code=201</code>.") in second  # the hint's code spans become <code>
    third = check("1", path=attempt)._repr_html_()
    assert "More (failed 3 runs in a row):" in third
    assert "UserPublic lists what anyone may see of a user" in html.unescape(third)
    fresh = check("1", path=attempt, record=False)._repr_html_()
    assert "<strong>Hint:</strong>" not in fresh

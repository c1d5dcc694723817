"""`grader doctor`: what it finds on this clone and on broken fake ones."""

import io
import sys

import pytest

from grader import doctor
from grader.doctor import FAIL, INFO, OK, WARN, diagnose, run_doctor


def fake_root(tmp_path, requirements="pytest>=8\n", exercise=True, solution=True):
    """A course root with a requirements.txt and, optionally, chapter 1's folders."""
    root = tmp_path / "course"
    (root / "exercises").mkdir(parents=True)
    if requirements is not None:
        (root / "requirements.txt").write_text(requirements)
    if exercise:
        (root / "exercises" / "chapter-1" / "tracker").mkdir(parents=True)
        (root / "exercises" / "chapter-1" / "tracker" / "main.py").write_text("")
    if solution:
        (root / "solutions" / "chapter-1").mkdir(parents=True)
    return root


def failures(findings):
    return [finding for finding in findings if finding.level == FAIL]


def test_this_clone_is_in_order():
    out = io.StringIO()
    assert run_doctor(out) == 0, out.getvalue()
    text = out.getvalue()
    assert "✔ Python 3." in text and ("· Exercises started: " in text or "· No exercise started yet: " in text)
    assert "✘" not in text
    assert all(finding.fix == "" for finding in diagnose() if finding.ok)


def test_missing_and_outdated_requirements_fail_with_the_pip_fix(tmp_path):
    root = fake_root(tmp_path, requirements=(
        "# a comment\n\n-e .\n-r other.txt\n"
        "surely-not-installed-pkg>=1\n"
        "pytest>=999\n"
        "pytest>=8  # an inline comment\n"
        'ancient-only-pkg>=1; python_version < "3.0"\n'
    ))
    problems = failures(diagnose(root))
    assert [finding.what for finding in problems] == [
        "surely-not-installed-pkg>=1 is required, but surely-not-installed-pkg is not installed",
        f"pytest>=999 is required, but pytest {pytest.__version__} is installed",
    ]
    assert all("pip install -r requirements.txt" in finding.fix for finding in problems)
    out = io.StringIO()
    assert run_doctor(out, root=root) == 1
    assert "✘ pytest>=999 is required" in out.getvalue()
    assert "    fix: pip install -r requirements.txt" in out.getvalue()
    assert "ancient-only-pkg" not in out.getvalue()


def test_an_unmet_extra_is_a_failure(tmp_path):
    root = fake_root(tmp_path, requirements="pytest[dev]>=8\n")
    [problem] = failures(diagnose(root))
    assert "'dev' extra is not met" in problem.what


def test_missing_requirements_file_says_the_clone_is_incomplete(tmp_path):
    [problem] = failures(diagnose(fake_root(tmp_path, requirements=None)))
    assert "requirements.txt is missing" in problem.what and "incomplete" in problem.what
    assert "git" in problem.fix


def test_an_exercise_not_started_is_information_and_a_started_one_without_its_app_fails(tmp_path):
    root = fake_root(tmp_path, exercise=False, solution=False)
    findings = diagnose(root)
    assert failures(findings) == []
    assert [f.what for f in findings if f.level == INFO] == [
        "No exercise started yet: `grader start chapter-1` creates exercises/chapter-1"]
    assert not any("solutions/" in f.what for f in findings)  # a maintainer's concern, not a learner's

    (root / "exercises" / "chapter-1" / "tracker").mkdir(parents=True)
    findings = diagnose(root)
    assert "Exercises started: chapter-1 (in exercises/)" in [f.what for f in findings if f.level == INFO]
    [problem] = failures(findings)
    assert problem.what == "exercises/chapter-1/tracker/main.py is missing"
    assert "`grader reset chapter-1`" in problem.fix and "git" not in problem.fix


def test_old_python_fails_and_no_virtual_env_warns(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 10, 12, "final", 0))
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    python, venv = doctor._python(), doctor._virtual_env()
    assert python.level == FAIL and "3.10.12" in python.what and "3.11" in python.fix and "venv" in python.fix
    assert venv.level == WARN and "venv" in venv.fix
    assert OK not in (python.level, venv.level)


def test_the_sandbox_is_reported_with_its_fix(monkeypatch):
    from grader.sandbox import detect

    monkeypatch.setenv("GRADER_SANDBOX", "none")
    detect.cache_clear()
    try:
        finding = doctor._sandbox()
    finally:
        detect.cache_clear()
    assert finding.level == WARN and "without a sandbox" in finding.what and "GRADER_SANDBOX=none" in finding.what
    monkeypatch.delenv("GRADER_SANDBOX")
    assert "sandbox" in doctor._sandbox().what

"""The `grader` command as a learner meets it: exit statuses, messages, result files."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from .conftest import CHAPTER, SOLUTION, STARTER


def grader(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_list_shows_every_check():
    result = grader("list")
    assert result.returncode == 0
    assert all(check.name in result.stdout for check in CHAPTER.checks)


def test_check_passes_on_the_solution_with_exit_0(tmp_path):
    result = grader("check", "1", "--path", str(SOLUTION), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Score: {len(CHAPTER.checks)}/{len(CHAPTER.checks)} checks passed" in result.stdout


def test_check_fails_on_the_starter_with_hints_and_json_and_junit(tmp_path):
    result = grader("check", "chapter-1", "--path", str(STARTER), "--json", str(tmp_path / "r.json"),
                    "--junit", str(tmp_path / "r.xml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "What is wrong: A new user comes back with everything the ORM object holds" in result.stdout
    assert "Traceback" not in result.stdout and "_pytest" not in result.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == "grader-result/1"
    assert data["score"] == {"passed": 0, "total": len(CHAPTER.checks)}
    assert [c["name"] for c in data["checks"]] == [c.name for c in CHAPTER.checks]
    assert all(c["status"] in ("failed", "error") and c["message"] for c in data["checks"])
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("tests") == str(len(CHAPTER.checks))
    assert int(suite.get("failures")) + int(suite.get("errors")) == len(CHAPTER.checks)


def test_unknown_chapter_is_a_usage_error():
    result = grader("check", "chapter-99")
    assert result.returncode == 2
    assert "There is no chapter 'chapter-99'" in result.stderr and "chapter-1" in result.stderr


def test_missing_folder_and_missing_main_are_usage_errors(tmp_path):
    result = grader("check", "1", "--path", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "There is no folder" in result.stderr
    (tmp_path / "tracker").mkdir()
    result = grader("check", "1", "--path", str(tmp_path))
    assert result.returncode == 2 and "tracker/main.py is missing" in result.stderr


def test_no_command_prints_help():
    result = grader()
    assert result.returncode == 2 and "grader check" in result.stdout + result.stderr


def test_doctor_finds_this_clone_in_order():
    result = grader("doctor")
    assert result.returncode == 0, result.stdout
    assert "requirements in requirements.txt are installed" in result.stdout
    assert "\n· Exercises started: " in result.stdout or "\n· No exercise started yet: " in result.stdout

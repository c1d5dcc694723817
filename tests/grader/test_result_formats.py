"""`grader check --json FILE --format gradescope|prairielearn`: results in the shapes that
Gradescope and PrairieLearn read, checked against JSON Schemas written from their documentation.

Each folder is graded once (module fixtures) and every format is written from that one run;
one command-line run proves the option's wiring, another its usage error.
"""

import dataclasses
import json
import shutil
import subprocess
import sys

import jsonschema
import pytest

from grader.report import FORMATS, as_gradescope, as_json, as_prairielearn, write_json
from grader.runner import Runner

from .conftest import CHAPTER, SOLUTION, STARTER

_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
_TEXT_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}

#: Gradescope's autograder specification ("Output format" of results.json): a top-level score
#: or per-test scores, optional output, formats, visibility and extra data, and tests with
#: score, max_score, status ("passed" or "failed"), name, number, output and tags. Fields the
#: specification does not name are refused, so a typo cannot pass.
GRADESCOPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}},
    ],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": _TEXT_FORMAT,
        "test_output_format": _TEXT_FORMAT,
        "test_name_format": _TEXT_FORMAT,
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": _TEXT_FORMAT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": _TEXT_FORMAT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": _VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
        "leaderboard": {"type": "array"},
    },
}

#: PrairieLearn's external grading ("Grading results"): `score` from 0.0 to 1.0, needed unless
#: `gradable` is false (then `format_errors`, a string or a list of strings, says why); the
#: fields that <pl-external-grader-results> renders: message, output, images, and tests with
#: name, description, points, max_points, message, output and images.
PRAIRIELEARN_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "if": {"properties": {"gradable": {"const": False}}, "required": ["gradable"]},
    "then": {"required": ["format_errors"]},
    "else": {"required": ["score"]},
    "properties": {
        "gradable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "format_errors": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "images": {"type": "array"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "points", "max_points"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "points": {"type": "number", "minimum": 0},
                    "max_points": {"type": "number", "minimum": 0},
                    "message": {"type": "string"},
                    "output": {"type": "string"},
                    "images": {"type": "array"},
                },
            },
        },
    },
}

TOTAL = len(CHAPTER.checks)


@pytest.fixture(scope="module")
def starter_run():
    return Runner(CHAPTER, STARTER).run()


@pytest.fixture(scope="module")
def solution_run():
    return Runner(CHAPTER, SOLUTION).run()


def _roundtrip(data: dict) -> dict:
    """What a grading system reads: the dict as JSON text, parsed again."""
    return json.loads(json.dumps(data))


def test_the_schemas_refuse_what_the_documentation_does_not_allow(solution_run):
    """The schemas are strict enough to fail: each of these edits breaks a documented rule."""
    good = _roundtrip(as_gradescope(solution_run))
    jsonschema.validate(good, GRADESCOPE_SCHEMA)
    for broken in ({**good, "tests": [{**good["tests"][0], "status": "error"}]},
                   {**good, "visibility": "sometimes"},
                   {key: value for key, value in good.items() if key not in ("score", "tests")}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, GRADESCOPE_SCHEMA)
    good = _roundtrip(as_prairielearn(solution_run))
    jsonschema.validate(good, PRAIRIELEARN_SCHEMA)
    for broken in ({**good, "score": TOTAL}, {**good, "gradable": False},
                   {key: value for key, value in good.items() if key != "score"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, PRAIRIELEARN_SCHEMA)


@pytest.mark.parametrize("which", ["starter", "solution"])
def test_gradescope_results_have_the_documented_shape_and_the_right_score(which, request):
    run = request.getfixturevalue(f"{which}_run")
    data = _roundtrip(as_gradescope(run))
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    expected = TOTAL if which == "solution" else 0
    assert run.passed == expected
    assert data["score"] == expected == sum(test["score"] for test in data["tests"])
    assert [test["max_score"] for test in data["tests"]] == [1] * TOTAL
    assert [test["name"] for test in data["tests"]] == [f"{c.title} [{c.name}]" for c in CHAPTER.checks]
    assert {test["status"] for test in data["tests"]} == {"passed" if which == "solution" else "failed"}
    assert f"Score: {expected}/{TOTAL} checks passed" in data["output"]
    # Learner-controlled text is shown as text, never rendered as HTML or Markdown.
    assert data["output_format"] == data["test_output_format"] == data["test_name_format"] == "text"
    assert data["extra_data"]["grader_result"]["fingerprint"] == as_json(run)["fingerprint"]
    if which == "starter":
        # Each failing test carries the check's message: what was sent and what came back.
        failing = {test["name"].rsplit(" [", 1)[1][:-1]: test["output"] for test in data["tests"]}
        assert "got 200" in failing["create-user-returns-public-fields"]
        assert all(failing.values())
        # The hint ladder stays out: what the console shows with --no-hints.
        assert "What is wrong:" not in data["output"] and "Hint:" not in data["output"]


@pytest.mark.parametrize("which", ["starter", "solution"])
def test_prairielearn_results_have_the_documented_shape_and_the_right_score(which, request):
    run = request.getfixturevalue(f"{which}_run")
    data = _roundtrip(as_prairielearn(run))
    jsonschema.validate(data, PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is True
    assert data["score"] == (1.0 if which == "solution" else 0.0)
    assert sum(test["points"] for test in data["tests"]) == run.passed
    assert [test["name"] for test in data["tests"]] == [check.name for check in CHAPTER.checks]
    assert [test["description"] for test in data["tests"]] == [check.title for check in CHAPTER.checks]
    assert data["message"].startswith(f"Score: {run.passed}/{TOTAL} checks passed")
    if which == "starter":
        assert all(test["output"] and test["message"] in ("Failed.", "Error.") for test in data["tests"])


def test_an_app_that_does_not_load_scores_0_and_says_why(submission, tmp_path):
    broken = submission("app = FastAPI(", "app = FastAPI((")
    run = Runner(CHAPTER, broken).run()
    assert run.load_problem and "tracker/main.py" in run.load_problem
    gradescope = _roundtrip(as_gradescope(run))
    jsonschema.validate(gradescope, GRADESCOPE_SCHEMA)
    assert gradescope["score"] == 0 and all(test["score"] == 0 for test in gradescope["tests"])
    assert "Your app could not be loaded" in gradescope["output"] and "tracker/main.py" in gradescope["output"]
    prairielearn = _roundtrip(as_prairielearn(run))
    jsonschema.validate(prairielearn, PRAIRIELEARN_SCHEMA)
    # The learner's code was judged: gradable, with nothing earned, and the reason in the message.
    assert prairielearn["gradable"] is True and prairielearn["score"] == 0
    assert prairielearn["message"].startswith("Your app could not be loaded")
    assert "tracker/main.py" in prairielearn["message"]


def test_a_run_with_changed_checks_scores_0_and_prairielearn_calls_it_not_gradable(tmp_path):
    """The grader's own files differ from its manifest (here a copy of the suite with one line
    added): the submission was not judged, so PrairieLearn must not count the attempt."""
    suite = tmp_path / "suite"
    shutil.copytree(CHAPTER.suite_dir, suite, ignore=shutil.ignore_patterns("__pycache__"))
    with (suite / "test_checks.py").open("a") as file:
        file.write("\n# edited\n")
    run = Runner(dataclasses.replace(CHAPTER, suite_dir=suite), SOLUTION).run()
    assert run.integrity_problem and "changed: test_checks.py" in run.integrity_problem
    gradescope = _roundtrip(as_gradescope(run))
    jsonschema.validate(gradescope, GRADESCOPE_SCHEMA)
    assert gradescope["score"] == 0 and "cannot be trusted" in gradescope["output"]
    prairielearn = _roundtrip(as_prairielearn(run))
    jsonschema.validate(prairielearn, PRAIRIELEARN_SCHEMA)
    assert prairielearn["gradable"] is False and prairielearn["score"] == 0
    assert "cannot be trusted" in prairielearn["message"]
    assert "changed: test_checks.py" in prairielearn["format_errors"][0]


def test_write_json_writes_each_format_from_one_run(starter_run, tmp_path):
    for name, build in FORMATS.items():
        write_json(starter_run, tmp_path / f"{name}.json", name)
        written = json.loads((tmp_path / f"{name}.json").read_text())
        assert written.keys() == _roundtrip(build(starter_run)).keys()
    assert json.loads((tmp_path / "grader.json").read_text())["schema"] == "grader-result/1"


def _grader(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_the_format_option_writes_prairielearn_results(tmp_path, scratch_root):
    result = _grader("check", "1", "--path", SOLUTION, "--json", tmp_path / "out" / "results.json",
                     "--format", "prairielearn", "--no-record", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    jsonschema.validate(data, PRAIRIELEARN_SCHEMA)
    assert data["score"] == 1.0 and len(data["tests"]) == TOTAL


def test_a_format_without_a_json_file_is_a_usage_error(tmp_path):
    result = _grader("check", "1", "--path", SOLUTION, "--format", "gradescope", cwd=tmp_path)
    assert result.returncode == 2
    assert "--format gradescope" in result.stderr and "add --json FILE" in result.stderr
    assert "Score:" not in result.stdout  # nothing was graded
    result = _grader("check", "1", "--json", tmp_path / "r.json", "--format", "moodle", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'moodle'" in result.stderr

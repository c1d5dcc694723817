"""How results are shown: a console report for people, JSON and JUnit XML for tools."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from collections.abc import Callable
from typing import TextIO

from grader import __version__, manifest
from grader.catalogue import Chapter
from grader.runner import ERROR, FAILED, NOT_RUN, PASSED, TIMEOUT, CheckResult, RunResult, visible

JSON_SCHEMA = "grader-result/1"

MARKS = {PASSED: "✔", FAILED: "✘", ERROR: "!", TIMEOUT: "⏱", NOT_RUN: "·"}
_COLOURS = {PASSED: "32", FAILED: "31", ERROR: "31", TIMEOUT: "33", NOT_RUN: "2"}


def _display_path(path: Path) -> str:
    """A folder as a learner recognises it: from the course's root when it is in the clone
    (the same on every machine), else from the working folder, else in full."""
    from grader.catalogue import course_root

    for base in (course_root(), Path.cwd()):
        if base is not None and path.is_relative_to(base):
            return visible(str(path.relative_to(base)) or ".")
    return visible(str(path))


#: From this many failing runs in a row, a check's hint comes with its fuller explanation.
LADDER = 3


def ladder(check, runs: int) -> list[tuple[str, str]]:
    """The rungs of a check's hint ladder shown after `runs` failing runs in a row: what is
    wrong and where to read up first, then the API to reach for, then the full account."""
    rungs = []
    if check.lesson:
        rungs.append(("What is wrong: ", check.lesson))
    if check.reading:
        rungs.append(("Read: ", check.reading))
    if runs >= 2 or not check.lesson:
        rungs.append(("Hint: ", check.hint))
    if runs >= LADDER and check.explanation:
        rungs.append((f"More (failed {runs} runs in a row): ", " ".join(check.explanation.split())))
    return rungs


class ConsoleReport:
    """Prints each check as it finishes, then a summary. Colour only on a terminal.

    `failed_before(name)` says how many runs in a row a check had failed before this one; it
    decides whether the learner sees the short hint or, after repeated failures, the
    explanation too.
    """

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None,
                 failed_before: Callable[[str], int] | None = None, hints: bool = True) -> None:
        self.hints = hints
        self.stream = stream or sys.stdout
        if colour is None:
            colour = self.stream.isatty() and "NO_COLOR" not in os.environ
        self.colour = colour
        self.failed_before = failed_before or (lambda name: 0)

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    _slug = "chapter-N"

    def start(self, chapter: Chapter, learner_dir: Path, count: int | None = None) -> None:
        self._slug = chapter.slug
        self._print(self._paint(f"Chapter {chapter.number} · {chapter.title}", "1"))
        count = count or len(chapter.checks)
        self._print(f"Checking {_display_path(learner_dir)} ({count} check{'' if count == 1 else 's'})")
        self._print()

    def result(self, result: CheckResult) -> None:
        mark = self._paint(MARKS[result.status], _COLOURS[result.status])
        self._print(f" {mark} {result.check.name:<42} {result.check.title}")
        if result.passed:
            return
        for line in result.message.splitlines():
            self._print("     " + line)
        if result.status == NOT_RUN:
            self._print()
            return
        if result.about_app:  # a hang or a crash: the check's hint is about something else
            what = "hang" if result.status == TIMEOUT else "crash"
            advice = (f"Fix this {what} first; the check's own hint is about something else "
                      f"(`grader hint {self._slug} {result.check.name}` shows it).")
            self._print(self._paint(self._wrap(advice, ""), "36"))
            self._print()
            return
        if not self.hints:
            self._print()
            return
        for label, text in ladder(result.check, self.failed_before(result.check.name) + 1):
            self._print(self._paint(self._wrap(text, label), "36"))
        self._print()

    @staticmethod
    def _wrap(text: str, label: str) -> str:
        return textwrap.fill(text, width=92, initial_indent="     " + label, break_on_hyphens=False, break_long_words=False,
                             subsequent_indent="     " + " " * len(label))

    def load_problem(self, chapter: Chapter, message: str) -> None:
        self._print(self._paint("Your app could not be loaded, so no check could run.", "31;1"))
        for line in message.splitlines():
            self._print("  " + line)
        self._print()

    def integrity_problem(self, message: str) -> None:
        self._print(self._paint("This run cannot be trusted, so it earns no score.", "31;1"))
        for line in message.splitlines():
            self._print("  " + line)
        self._print()

    def summary(self, run: RunResult, next_step: str | None = None) -> None:
        """The score, then what to do next (`next_step` replaces the default advice)."""
        line = score_line(run)
        if run.sandbox == "none":
            self._print(self._paint(f"Note: your app ran without a sandbox: {run.sandbox_detail}.", "33"))
        self._print()
        self._print(self._paint(line, "32;1" if run.all_passed else "1"))
        if run.done:
            self._print(f"Chapter {run.chapter.number} is done. Well done!")
        elif run.all_passed:
            self._print(f"These checks pass. For the chapter's score, run all {len(run.chapter.checks)}: "
                        f"`grader check {run.chapter.slug}`.")
        elif run.load_problem is None and run.integrity_problem is None:
            self._print(next_step or f"Fix the first failing check, then run `grader check {run.chapter.slug}` again.")


def score_line(run: RunResult) -> str:
    """The run in one honest sentence: what passed, what did not, and any restarts."""
    counts = {status: sum(r.status == status for r in run.results) for status in (FAILED, ERROR, TIMEOUT, NOT_RUN)}
    others = ", ".join(f"{count} {status.replace('-', ' ')}" for status, count in counts.items() if count)
    line = f"Score: {run.passed}/{len(run.results)} checks passed" + (f" ({others})" if others else "")
    line += f" in {run.seconds:.1f} s."
    if run.workers > 1:
        line += f" The app's process was restarted {run.workers - 1} time(s) after a hang or a crash."
    return line


def as_json(run: RunResult) -> dict:
    files = manifest.build()  # read and hash the grader's files once for both fingerprints
    return {
        "schema": JSON_SCHEMA,
        "grader_version": __version__,
        "chapter": run.chapter.slug,
        "title": run.chapter.title,
        "path": visible(str(run.learner_dir)),
        "fingerprint": manifest.fingerprint(files=files),
        "suite_fingerprint": manifest.fingerprint(f"suites/{run.chapter.slug}/", files),
        "integrity_problem": run.integrity_problem,
        "sandbox": run.sandbox,
        "sandbox_detail": run.sandbox_detail,
        "score": {"passed": run.passed, "total": len(run.results)},
        "load_problem": run.load_problem,
        "duration": round(run.seconds, 3),
        "app_hosts": run.workers,
        "checks": [
            {
                "name": result.check.name,
                "title": result.check.title,
                "status": result.status,
                "message": result.message,
                "duration": round(result.duration, 3),
                "about_app": result.about_app,
            }
            for result in run.results
        ],
    }


def from_json(data: dict, chapter: Chapter) -> RunResult:
    """A run read back from `as_json` (what `grader verify` and the notebook receive from a
    `grader check` in a process of its own)."""
    by_name = {check.name: check for check in chapter.checks}
    results = [CheckResult(by_name[item["name"]], item["status"], item["message"], item["duration"],
                           item.get("about_app", False))
               for item in data["checks"] if item["name"] in by_name]
    return RunResult(chapter, Path(data["path"]), results, load_problem=data["load_problem"],
                     integrity_problem=data["integrity_problem"], seconds=data["duration"],
                     workers=data.get("app_hosts", 1), sandbox=data.get("sandbox", "none"),
                     sandbox_detail=data.get("sandbox_detail", ""))


def console_text(run: RunResult) -> str:
    """What `grader check --no-hints` prints for this run, without colour: the text that goes to
    an autograder's learner-facing output (the hint ladder stays out, as it would give answers
    away to a learner who has not asked for them)."""
    stream = io.StringIO()
    report = ConsoleReport(stream=stream, colour=False, hints=False)
    report.start(run.chapter, run.learner_dir, len(run.results))
    for result in run.results:
        report.result(result)
    if run.load_problem:
        report.load_problem(run.chapter, run.load_problem)
    if run.integrity_problem:
        report.integrity_problem(run.integrity_problem)
    report.summary(run)
    return stream.getvalue()


def _points(run: RunResult) -> list[int]:
    """One point per check that passed (every check states one rule, and no rule is worth more
    than another); none at all when the app could not be loaded or the run cannot be trusted."""
    if run.load_problem or run.integrity_problem:
        return [0] * len(run.results)
    return [int(result.passed) for result in run.results]


def _why_zero(run: RunResult) -> str | None:
    """The reason a run earns nothing whatever its checks say, in a sentence for the learner."""
    if run.integrity_problem:
        return f"This run cannot be trusted, so it earns no score. {run.integrity_problem}"
    if run.load_problem:
        return f"Your app could not be loaded, so no check could run. {run.load_problem}"
    return None


def as_gradescope(run: RunResult) -> dict:
    """Gradescope's `results.json` (its autograder specification): a top-level score, and one
    test per check with its score, `max_score`, `status` and output. Every text is marked as
    plain text, since messages quote what the learner's app sent; the whole `grader-result/1`
    record goes in `extra_data` for whoever audits the grade (its fingerprint above all)."""
    points = _points(run)
    return {
        "score": sum(points),
        "execution_time": max(1, round(run.seconds)),
        "output": console_text(run),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"grader_result": as_json(run)},
        "tests": [
            {
                "name": f"{result.check.title} [{result.check.name}]",
                "number": f"{run.chapter.number}.{index}",
                "score": point,
                "max_score": 1,
                "status": "passed" if point else "failed",
                "output": result.message,
                "tags": [run.chapter.slug, result.status],
            }
            for index, (result, point) in enumerate(zip(run.results, points), start=1)
        ],
    }


def as_prairielearn(run: RunResult) -> dict:
    """PrairieLearn's external-grading `results.json`: `score` from 0 to 1, a message, and one
    test per check with `points` out of `max_points`.

    `gradable` is false only when the grader's own checks were changed (an integrity problem):
    then the submission was never judged, and PrairieLearn neither scores it nor counts the
    attempt. An app that does not load is the learner's work judged: gradable, with 0 points.
    """
    points = _points(run)
    why = _why_zero(run)
    total = len(run.results)
    data = {
        "gradable": run.integrity_problem is None,
        "score": round(sum(points) / total, 4) if total else 0.0,
        "message": why or score_line(run),
        "output": console_text(run),
        "tests": [
            {
                "name": result.check.name,
                "description": result.check.title,
                "points": point,
                "max_points": 1,
                "message": "Passed." if point else f"{result.status.replace('-', ' ').capitalize()}.",
                "output": result.message,
            }
            for result, point in zip(run.results, points)
        ],
    }
    if run.integrity_problem:
        data["format_errors"] = [run.integrity_problem]
    return data


#: What `grader check --json FILE --format NAME` writes: the grader's own record, or the
#: results file another grading system reads.
FORMATS: dict[str, Callable[[RunResult], dict]] = {
    "grader": as_json,
    "gradescope": as_gradescope,
    "prairielearn": as_prairielearn,
}


def write_json(run: RunResult, path: Path, format: str = "grader") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(FORMATS[format](run), indent=2, ensure_ascii=False) + "\n")


def write_junit(run: RunResult, path: Path) -> None:
    results = run.results
    suite = ET.Element(
        "testsuite",
        name=run.chapter.slug,
        tests=str(len(results)),
        failures=str(sum(r.status == FAILED for r in results)),
        errors=str(sum(r.status in (ERROR, TIMEOUT, NOT_RUN) for r in results)),
        time=f"{run.seconds:.3f}",
    )
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=run.chapter.slug, name=result.check.name,
                             time=f"{result.duration:.3f}")
        if result.status == FAILED:
            ET.SubElement(case, "failure", message=result.check.title).text = result.message
        elif not result.passed:
            ET.SubElement(case, "error", message=f"{result.status}: {result.check.title}").text = (
                result.message or run.load_problem or ""
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

"""How results are shown: a console report for people, JSON and JUnit XML for tools."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TextIO

from grader import __version__
from grader.catalogue import Chapter
from grader.runner import ERROR, FAILED, NOT_RUN, PASSED, TIMEOUT, CheckResult, RunResult

JSON_SCHEMA = "grader-result/1"

_MARKS = {PASSED: "✔", FAILED: "✘", ERROR: "!", TIMEOUT: "⏱", NOT_RUN: "·"}
_COLOURS = {PASSED: "32", FAILED: "31", ERROR: "31", TIMEOUT: "33", NOT_RUN: "2"}


def suite_fingerprint(chapter: Chapter) -> str:
    """A hash of the chapter's hidden suite, so a result says which checks produced it."""
    digest = hashlib.sha256()
    for path in sorted(chapter.suite_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(chapter.suite_dir).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class ConsoleReport:
    """Prints each check as it finishes, then a summary. Colour only on a terminal."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if colour is None:
            colour = self.stream.isatty() and "NO_COLOR" not in os.environ
        self.colour = colour

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def start(self, chapter: Chapter, learner_dir: Path) -> None:
        self._print(self._paint(f"Chapter {chapter.number} · {chapter.title}", "1"))
        self._print(f"Checking {_display_path(learner_dir)} ({len(chapter.checks)} checks)")
        self._print()

    def result(self, result: CheckResult) -> None:
        mark = self._paint(_MARKS[result.status], _COLOURS[result.status])
        self._print(f" {mark} {result.check.name:<42} {result.check.title}")
        if result.passed:
            return
        for line in result.message.splitlines():
            self._print("     " + line)
        hint = textwrap.fill(result.check.hint, width=88, initial_indent="     Hint: ",
                             subsequent_indent="           ")
        self._print(self._paint(hint, "36"))
        self._print()

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

    def summary(self, run: RunResult, command: str | None = None) -> None:
        total = len(run.chapter.checks)
        counts = {status: sum(r.status == status for r in run.results)
                  for status in (FAILED, ERROR, TIMEOUT, NOT_RUN)}
        others = ", ".join(f"{count} {status.replace('-', ' ')}" for status, count in counts.items() if count)
        line = f"Score: {run.passed}/{total} checks passed" + (f" ({others})" if others else "")
        line += f" in {run.seconds:.1f} s."
        self._print()
        self._print(self._paint(line, "32;1" if run.all_passed else "1"))
        if run.all_passed:
            self._print(f"Chapter {run.chapter.number} is done. Well done!")
        elif run.load_problem is None:
            again = command or f"grader check {run.chapter.slug}"
            self._print(f"Fix the first failing check, then run `{again}` again.")


def as_json(run: RunResult) -> dict:
    return {
        "schema": JSON_SCHEMA,
        "grader_version": __version__,
        "chapter": run.chapter.slug,
        "title": run.chapter.title,
        "path": str(run.learner_dir),
        "suite_fingerprint": suite_fingerprint(run.chapter),
        "score": {"passed": run.passed, "total": len(run.chapter.checks)},
        "load_problem": run.load_problem,
        "duration": round(run.seconds, 3),
        "checks": [
            {
                "name": result.check.name,
                "title": result.check.title,
                "status": result.status,
                "message": result.message,
                "duration": round(result.duration, 3),
            }
            for result in run.results
        ],
    }


def write_json(run: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(run), indent=2, ensure_ascii=False) + "\n")


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

"""The learner's record: each chapter's best and latest score, and how often each check has
failed in a row (which decides when a hint grows into a fuller explanation).

Kept in one file, `.grader/progress.json` at the root of the clone (ignored by git), or in
`$XDG_STATE_HOME/fastapi-course-grader/` when the grader runs outside a clone
(`GRADER_STATE_DIR` overrides both). Backups made by `grader reset` live beside it, and so
does the whole result of each chapter's latest full run (`runs/chapter-N.json`), which
`grader report` gathers into the learner's report.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.catalogue import course_root

if TYPE_CHECKING:
    from grader.runner import RunResult

FILE_VERSION = 1


def state_dir() -> Path:
    if override := os.environ.get("GRADER_STATE_DIR"):
        return Path(override)
    root = course_root()
    if root is not None:
        return root / ".grader"
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "fastapi-course-grader"


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class Progress:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "progress.json"
        self.data: dict[str, Any] = {"version": FILE_VERSION, "chapters": {}}
        try:
            loaded = json.loads(self.path.read_text())
            if loaded.get("version") == FILE_VERSION:
                self.data = loaded
        except (OSError, ValueError):
            pass  # no record yet, or an unreadable one: start afresh rather than fail a check

    def chapter(self, slug: str) -> dict[str, Any]:
        return self.data["chapters"].setdefault(slug, {"streaks": {}})

    def streak(self, slug: str, check: str) -> int:
        """How many runs in a row this check has not passed, before the current run."""
        return self.chapter(slug)["streaks"].get(check, 0)

    def record(self, slug: str, passed: int, total: int, statuses: dict[str, bool], folder: Path) -> None:
        entry = self.chapter(slug)
        if entry.get("last", {}).get("path") not in (None, str(folder)):
            entry["streaks"] = {}  # another folder is another attempt: its hints start at the first rung
        score = {"passed": passed, "total": total, "when": _now(), "path": str(folder)}
        entry["last"] = score
        best = entry.get("best")
        if best is None or passed >= best["passed"]:
            entry["best"] = score
        for check, ok in statuses.items():
            entry["streaks"][check] = 0 if ok else entry["streaks"].get(check, 0) + 1
        self.save()

    def record_run(self, run: "RunResult") -> None:
        """Remember a run of the learner's own work.

        Runs on the course's solutions or pristine starters are not the learner's score. A run
        in which no check could run (an import failure, a void run) changes the score but not
        the failure counts, so the hints do not escalate for checks that never ran.
        """
        root = course_root()
        course_own = (root / "solutions", root / "grader") if root is not None else ()
        if any(run.learner_dir.is_relative_to(folder) for folder in course_own):
            return
        statuses = {result.check.name: result.passed for result in run.results}
        if run.load_problem or run.integrity_problem:
            statuses = {}
        if len(run.results) != len(run.chapter.checks):
            return  # a run of some checks only (--only) is not a score for the chapter
        self.record(run.chapter.slug, run.passed, len(run.chapter.checks), statuses, run.learner_dir)
        self.keep_last_run(run)

    def last_run_path(self, slug: str) -> Path:
        return self.path.parent / "runs" / f"{slug}.json"

    def keep_last_run(self, run: "RunResult") -> None:
        """Keep the whole result of the chapter's latest full run, for `grader report`: a learner's
        report is then made offline, in an instant, from runs the learner saw."""
        from grader.report import as_json  # report imports the runner, which this module must not

        data = {"when": _now(), "result": as_json(run)}
        try:
            path = self.last_run_path(run.chapter.slug)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            temporary.replace(path)
        except OSError:
            pass  # as in save(): a read-only state folder forgets, it does not fail the check

    def last_run(self, slug: str) -> dict[str, Any] | None:
        """The chapter's latest full run as `keep_last_run` wrote it ({"when", "result"}), if any."""
        try:
            data = json.loads(self.last_run_path(slug).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("result"), dict) else None

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.data, indent=2) + "\n")
            temporary.replace(self.path)
        except OSError:
            pass  # a read-only clone (a shared classroom copy) still grades; it just forgets

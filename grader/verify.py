"""`grader verify`: the course checks itself.

For every chapter: the reference solution passes every check, every check fails on the
starter (a check the starter passes asks nothing of the learner), and every mutant (a
realistic wrong solution) fails each check that claims to catch it.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from grader.catalogue import Chapter, Mutant, UsageError, solution_dir
from grader.runner import RunResult, run_apart
from grader.workspace import materialize


@dataclass
class Job:
    chapter: Chapter
    kind: str  # solution, starter or mutant
    folder: Path
    mutant: Mutant | None = None

    @property
    def label(self) -> str:
        what = f"mutant {self.mutant.name}" if self.mutant else self.kind
        return f"{self.chapter.slug} {what}"


def apply_mutant(solution: Path, mutant: Mutant, into: Path) -> Path:
    """Copy the solution and apply the mutant's edits; each `find` must occur exactly once."""
    target = into / mutant.name
    shutil.copytree(solution, target, ignore=shutil.ignore_patterns("__pycache__"))
    for edit in mutant.edits:
        path = target / edit.file
        if edit.delete:
            path.unlink()
            continue
        text = path.read_text()
        count = text.count(edit.find)
        if count != 1:
            raise ValueError(
                f"mutant {mutant.name}: the text to replace occurs {count} times in {edit.file} "
                "(it must occur exactly once); update mutants.toml to match the solution"
            )
        path.write_text(text.replace(edit.find, edit.replace))
    return target


def suite_consistency(chapter: Chapter) -> list[str]:
    """chapter.toml and test_checks.py must name the same checks."""
    tree = ast.parse((chapter.suite_dir / "test_checks.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    defined |= {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names if (alias.asname or alias.name).startswith("test_")}
    listed = {check.test_name for check in chapter.checks}
    if chapter.inherit:
        # A whole earlier suite runs here too: its tests come in with it, unnamed in this file.
        defined |= {check.test_name for check in chapter.checks if check.inherited}
    problems = [f"{chapter.slug}: {name} is in test_checks.py but not in chapter.toml" for name in defined - listed]
    problems += [f"{chapter.slug}: chapter.toml lists {name}, which test_checks.py lacks" for name in listed - defined]
    names = {check.name for check in chapter.checks}
    own = {check.name for check in chapter.checks if not check.inherited}
    for mutant in chapter.mutants:
        problems += [f"{chapter.slug}: mutant {mutant.name} names an unknown check {name}"
                     for name in mutant.caught_by if name not in names]
    claimed = {name for mutant in chapter.mutants for name in mutant.caught_by}
    problems += [f"{chapter.slug}: no mutant shows what {name} catches; add one to mutants.toml"
                 for name in sorted(own - claimed)]
    return problems


def judge(job: Job, run: RunResult) -> list[str]:
    status = {result.check.name: result for result in run.results}
    if run.load_problem:
        if job.kind == "starter":
            return []
        return [f"{job.label}: the app could not be loaded: {run.load_problem.splitlines()[0]}"]
    if job.kind == "solution":
        return [f"{job.label} fails {name}: {result.message.splitlines()[0] if result.message else result.status}"
                for name, result in status.items() if not result.passed]
    if job.kind == "starter":  # an inherited check guards what the starter already does
        inherited = {check.name for check in job.chapter.checks if check.inherited}
        return [f"{job.label} passes {name}: the check asks nothing of the learner"
                for name, result in status.items() if result.passed and name not in inherited]
    assert job.mutant is not None
    # A check that did not run (the suite was changed during the run, say) catches nothing.
    return [f"{job.label} is not caught by {name}: {job.mutant.description}"
            + (f" ({status[name].message})" if status[name].status == "not-run" else "")
            for name in job.mutant.caught_by if status[name].status in ("passed", "not-run")]


def verify(chapters: list[Chapter], stream: TextIO | None = None, workers: int | None = None) -> list[str]:
    """Run every job; return the problems found (an empty list means the course is sound).

    On a terminal a live bar shows how far along the run is and which jobs are running;
    elsewhere (CI logs) each finished job is one plain line.
    """
    stream = stream or sys.stdout
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="grader-verify-") as scratch:
        jobs: list[Job] = []
        for chapter in chapters:
            problems += suite_consistency(chapter)
            solution = solution_dir(chapter)
            jobs.append(Job(chapter, "solution", solution))
            try:  # the starter as `grader start` makes it, in the scratch folder
                jobs.append(Job(chapter, "starter", materialize(chapter, Path(scratch) / "starters" / chapter.slug)))
            except UsageError as exc:
                problems.append(f"{chapter.slug} starter: {exc}")
            for mutant in chapter.mutants:
                try:
                    mutated = apply_mutant(solution, mutant, Path(scratch) / "mutants" / chapter.slug)
                    jobs.append(Job(chapter, "mutant", mutated, mutant))
                except ValueError as exc:
                    problems.append(str(exc))
        # The jobs' progress goes to a scratch state folder: verifying is not a learner's attempt.
        env = {**os.environ, "GRADER_STATE_DIR": str(Path(scratch) / "state")}
        with _Display(stream, len(jobs)) as display:
            running: set[str] = set()

            def run(job: Job) -> RunResult:
                running.add(job.label)
                display.running(running)
                try:  # each job is a `grader check` of its own, as a learner would run it
                    # A mutant needs only the checks that claim it: the others are not judged.
                    only = list(job.mutant.caught_by) if job.mutant else None
                    return run_apart(job.chapter, job.folder, env=env, only=only, warm=True)
                finally:
                    running.discard(job.label)

            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
                futures = {pool.submit(run, job): job for job in jobs}
                for future in as_completed(futures):
                    job, result = futures[future], future.result()
                    found = judge(job, result)
                    problems += found
                    display.done(f"{'✔' if not found else '✘'} {job.label:<48} {result.passed}/{len(result.results)} "
                                 f"checks passed ({result.seconds:.1f} s)")
                    display.running(running)
    return problems


class _Display:
    """Progress for a long verify: a rich live bar on a terminal, plain numbered lines otherwise."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total, self.finished = stream, total, 0
        self.bar = None
        if stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(file=stream), transient=True)
            self.task = self.bar.add_task("starting", total=total)

    def __enter__(self) -> "_Display":
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def running(self, labels: set[str]) -> None:
        if self.bar:
            self.bar.update(self.task, description="running " + ", ".join(sorted(labels)) if labels else "")

    def done(self, line: str) -> None:
        self.finished += 1
        text = f"[{self.finished:>2}/{self.total}] {line}"
        if self.bar:
            self.bar.console.print(text, highlight=False, markup=False)
            self.bar.advance(self.task)
        else:
            print(text, file=self.stream, flush=True)

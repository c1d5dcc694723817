"""The `grader` command: the learner's commands and the course's self-test."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from grader import __version__
from grader.catalogue import (
    Chapter, UsageError, all_chapters, course_root, exercise_dir, find_chapter, learner_folder,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grader",
        description="Check your exercises for the course FastAPI in Production.",
        epilog="Examples: grader start chapter-1 · grader check chapter-1 · grader watch 1 · grader hint 1",
    )
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("list", help="list the chapters and their checks")

    def graded(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("chapter", metavar="CHAPTER", help="chapter-1, or just 1")
        sub.add_argument("--path", type=Path, help="use this folder instead of exercises/chapter-N")
        return sub

    graded("start", "create your exercise folder for a chapter: its starting code and the exercise")
    check = graded("check", "grade a chapter's exercise")
    check.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    check.add_argument("--junit", type=Path, metavar="FILE", help="also write the results as JUnit XML")
    check.add_argument("--format", choices=("grader", "gradescope", "prairielearn"), default="grader",
                       help="the shape of the --json file: the grader's own (default), Gradescope's results.json "
                            "or PrairieLearn's external-grading results.json")
    check.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="time limit for each request (default: 3)")
    check.add_argument("--no-hints", action="store_true", help="show what failed, without hints")
    check.add_argument("--only", action="append", metavar="CHECK",
                       help="run only this check (repeat for more); such a run is not recorded as a score")
    check.add_argument("--no-record", action="store_true",
                       help="leave your progress file alone: neither read (for the hint ladder) nor write it")

    watch = graded("watch", "grade again every time you save a .py file")
    watch.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="time limit for each request (default: 3)")
    watch.add_argument("--no-hints", action="store_true", help="show what failed, without hints")

    hint = commands.add_parser("hint", help="show the hint and explanation for a check")
    hint.add_argument("chapter", metavar="CHAPTER")
    hint.add_argument("check", metavar="CHECK", nargs="?",
                      help="a check's name (default: the first check that failed last time)")

    graded("diff", "show your changes against the starter code")
    graded("reset", "restore the starter code (your work is saved to a backup first)")

    commands.add_parser("progress", help="your best and latest score in every chapter")
    commands.add_parser("doctor", help="check your Python, packages and exercise folders")

    verify = commands.add_parser("verify", help="the course's self-test: solutions pass, starters and mutants fail")
    verify.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters to verify (default: all)")

    report = commands.add_parser("report", help="your results in every chapter as one file, to hand in")
    report.add_argument("--name", help="your name as the facilitator knows it (default: git's user.name)")
    report.add_argument("--out", type=Path, metavar="FILE", help="where to write it (default: grader-report-NAME.json)")

    batch = commands.add_parser("batch", help="grade many learners' folders or repositories for one chapter")
    batch.add_argument("chapter", metavar="CHAPTER", help="chapter-1, or just 1")
    batch.add_argument("sources", nargs="+", metavar="SOURCE",
                       help="a learner's folder, a folder of them, or a git repository (a path or a URL)")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder for the reports, one each")
    batch.add_argument("--workers", type=int, metavar="N",
                       help="submissions graded at once (default: twice the cores)")
    batch.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="time limit for each request (default: 3)")

    summary = commands.add_parser("summary", help="a table and a heatmap of a folder of reports")
    summary.add_argument("folder", type=Path, metavar="DIR", help="the folder holding the reports")
    summary.add_argument("--html", type=Path, metavar="FILE", help="also write the summary as one HTML page")
    return parser


def cmd_list() -> int:
    root = course_root()
    for chapter in all_chapters():
        started = root is not None and exercise_dir(chapter).is_dir()
        folder = f"exercises/{chapter.slug}" if started else f"(not started: grader start {chapter.slug})"
        print(f"{chapter.slug:<11} {chapter.title}  [{len(chapter.checks)} checks, {folder}]")
        for check in chapter.checks:
            print(f"    {check.name:<42} {check.title}")
    return EXIT_OK


def _grade(runner, chapter: Chapter, folder: Path, next_step: str, json_file=None, junit_file=None, hints=True,
           record=True, json_format="grader"):
    """Run, report to the console, remember the score (unless `record` is off), write result files."""
    from grader.progress import Progress
    from grader.report import ConsoleReport, write_json, write_junit

    progress = Progress()
    streak = (lambda name: progress.streak(chapter.slug, name)) if record else (lambda name: 0)
    report = ConsoleReport(failed_before=streak, hints=hints)
    report.start(chapter, folder, len(runner.only) if runner.only else None)
    runner.on_result = report.result
    run = runner.run()
    if run.load_problem:
        report.load_problem(chapter, run.load_problem)
    if run.integrity_problem:
        report.integrity_problem(run.integrity_problem)
    report.summary(run, next_step)
    if record:
        progress.record_run(run)
    if json_file:
        write_json(run, json_file, json_format)
    if junit_file:
        write_junit(run, junit_file)
    return run


def _limits(args: argparse.Namespace):
    from grader.runner import Limits

    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    return Limits(request=args.timeout)


def _chosen_folder(chapter: Chapter, path: Path | None) -> Path:
    """The folder `--path` names, else the chapter's exercise folder; it need not exist."""
    return (path or exercise_dir(chapter)).expanduser().resolve()


def cmd_start(args: argparse.Namespace) -> int:
    from grader.runner import visible
    from grader.workspace import start

    chapter = find_chapter(args.chapter)
    path_option = f" --path {args.path}" if args.path else ""
    print(visible(start(chapter, _chosen_folder(chapter, args.path), "grader", path_option)))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from grader.runner import Runner, stop_on_signals, visible

    chapter = find_chapter(args.chapter)
    if args.format != "grader" and args.json is None:
        raise UsageError(f"--format {args.format} says how to write the --json file, and there is none: "
                         "add --json FILE (for example --json results.json).")
    limits = _limits(args)
    only = [chapter.check(name) for name in args.only] if args.only else None
    folder = learner_folder(chapter, args.path)  # after the command's own mistakes, whatever the folder
    stop_on_signals()  # once the command is known to run: a usage error needs no orderly ending

    again = f"grader check {chapter.slug}" + (f" --path {visible(str(args.path))}" if args.path else "")
    next_step = f"Fix the first failing check, then run `{again}` again."
    runner = Runner(chapter, folder, limits, only=only)
    run = _grade(runner, chapter, folder, next_step, args.json, args.junit,
                 hints=not args.no_hints, record=not args.no_record, json_format=args.format)
    return EXIT_OK if run.all_passed else EXIT_FAILED


def cmd_watch(args: argparse.Namespace) -> int:
    from grader.watch import watch

    chapter = find_chapter(args.chapter)
    folder = learner_folder(chapter, args.path)
    limits = _limits(args)
    from grader.runner import stop_on_signals

    stop_on_signals()  # a closed terminal or `kill` ends the run in order, as Ctrl-C does
    next_step = "Fix the first failing check and save: the checks run again by themselves."
    watch(chapter, folder, limits, lambda runner: _grade(runner, chapter, folder, next_step, hints=not args.no_hints),
          lambda line: print(line, flush=True))
    return EXIT_OK


def cmd_hint(args: argparse.Namespace) -> int:
    from grader.progress import Progress

    chapter = find_chapter(args.chapter)
    if args.check:
        check = chapter.check(args.check)
    else:
        progress = Progress()
        failing = [check for check in chapter.checks if progress.streak(chapter.slug, check.name)]
        if not failing and "last" in progress.chapter(chapter.slug):
            print(f"Every check of {chapter.slug} passed on your last run. Nothing to hint at!")
            return EXIT_OK
        check = failing[0] if failing else chapter.checks[0]
    print(f"{check.name}: {check.title}\n")
    from grader.report import ladder

    for label, text in ladder(check, runs=99):  # asked for: every rung at once
        print(f"{label.replace(' (failed 99 runs in a row)', '')}{text}\n")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from grader.workspace import diff

    chapter = find_chapter(args.chapter)
    folder = learner_folder(chapter, args.path)
    changes = diff(chapter, folder)
    if not changes:
        print(f"{folder} is the same as the starter code.")
        return EXIT_OK
    colour = sys.stdout.isatty()
    for line in changes.splitlines():
        code = "32" if line.startswith("+") else "31" if line.startswith("-") else "36" if line.startswith("@@") else ""
        print(f"\033[{code}m{line}\033[0m" if colour and code else line)
    return EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    from grader.workspace import reset

    chapter = find_chapter(args.chapter)
    folder = _chosen_folder(chapter, args.path)
    existed = folder.exists()
    saved = reset(chapter, folder)
    if not existed:
        print(f"{folder} did not exist; it holds the starter code now, and the exercise in README.md.")
    elif saved is None:
        print(f"{folder} already holds the starter code; nothing to reset.")
    else:
        print(f"Your work was saved to {saved}\n{folder} holds the starter code again.")
    return EXIT_OK


def _when(stamp: str) -> str:
    """An ISO timestamp as a person reads it: 2026-11-27 17:35."""
    return stamp[:16].replace("T", " ")


def cmd_progress() -> int:
    from rich.console import Console
    from rich.table import Table

    from grader.progress import Progress

    progress = Progress()
    table = Table(title="Your progress", title_justify="left")
    for column in ("chapter", "title", "best", "when", "latest", "when "):
        table.add_column(column, justify="right" if column in ("best", "latest") else "left", no_wrap=True)
    for chapter in all_chapters():
        entry = progress.chapter(chapter.slug)
        best, last = entry.get("best"), entry.get("last")
        if best is None:
            table.add_row(chapter.slug, chapter.title, "–", "not tried yet", "–", "")
            continue
        style = "green" if best["passed"] == best["total"] else None
        table.add_row(chapter.slug, chapter.title, f"{best['passed']}/{best['total']}", _when(best["when"]),
                      f"{last['passed']}/{last['total']}", _when(last["when"]), style=style)
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(f"Kept in {progress.path}", highlight=False)
    return EXIT_OK


def cmd_doctor() -> int:
    from grader.doctor import run_doctor

    return run_doctor()


def cmd_verify(args: argparse.Namespace) -> int:
    from grader.verify import verify

    chapters = [find_chapter(name) for name in args.chapters] or all_chapters()
    jobs = sum(2 + len(chapter.mutants) for chapter in chapters)
    print(f"Verifying {', '.join(chapter.slug for chapter in chapters)}: {jobs} runs "
          "(each solution, each starter, each mutant)")
    problems = verify(chapters)
    print()
    if problems:
        print(f"{len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_FAILED
    print("The course is sound: every solution passes, every check fails on its starter, every mutant is caught.")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from grader.classroom import NOT_TRIED, default_name, file_name, learner_report, write_report
    from grader.runner import visible

    name = (args.name if args.name is not None else default_name()).strip()
    if not name:
        raise UsageError("--name must not be empty.")
    report = learner_report(name)
    out = (args.out or Path(f"grader-report-{file_name(name)}.json")).expanduser()
    if out.is_dir():
        raise UsageError(f"{out} is a folder; --out names the report's file.")
    for slug, entry in report["chapters"].items():
        if entry["status"] == NOT_TRIED:
            print(f"{slug:<11} not tried yet")
            continue
        score = entry["result"]["score"]
        print(f"{slug:<11} {score['passed']}/{score['total']} checks passed (run {_when(entry['when'])})")
    write_report(report, out)
    print(f"Wrote the report of {visible(name)} to {visible(str(out))}: hand this file in.")
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    import os
    import time

    from grader.classroom import GRADED, batch
    from grader.runner import visible

    chapter = find_chapter(args.chapter)
    workers = args.workers if args.workers is not None else 2 * (os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers must be at least 1.")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"{args.out} is a file; --out names the folder for the reports.")
    from grader.runner import stop_on_signals

    stop_on_signals()  # SIGTERM and SIGHUP end the batch as Ctrl-C does: the reports written so far stay
    started = time.monotonic()
    reports = batch(chapter, args.sources, args.out, workers, args.timeout)
    entries = [report["chapters"][chapter.slug] for report in reports]
    graded = [entry["result"] for entry in entries if entry["status"] == GRADED]
    passed = sum(result["score"]["passed"] == result["score"]["total"] and not result["load_problem"]
                 for result in graded)
    print(f"\nGraded {len(graded)} of {len(reports)} submission(s) of {chapter.slug} in "
          f"{time.monotonic() - started:.0f} s with {workers} at once: {passed} passed every check, "
          f"{len(graded) - passed} did not, {len(reports) - len(graded)} could not be graded.")
    print(f"Reports in {visible(str(args.out))}; `grader summary {visible(str(args.out))}` sums them up.")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    from grader.classroom import print_summary, summarise, summary_html
    from grader.runner import visible

    if not args.folder.is_dir():
        raise UsageError(f"There is no folder {args.folder}; give the folder that holds the reports.")
    summary = summarise(args.folder)
    print_summary(summary)
    if args.html:
        if args.html.is_dir():
            raise UsageError(f"{args.html} is a folder; --html names the page's file.")
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(summary_html(summary), encoding="utf-8")
        print(f"\nWrote {visible(str(args.html))}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    commands = {
        "list": lambda: cmd_list(),
        "start": lambda: cmd_start(args),
        "check": lambda: cmd_check(args),
        "watch": lambda: cmd_watch(args),
        "hint": lambda: cmd_hint(args),
        "diff": lambda: cmd_diff(args),
        "reset": lambda: cmd_reset(args),
        "progress": lambda: cmd_progress(),
        "doctor": lambda: cmd_doctor(),
        "verify": lambda: cmd_verify(args),
        "report": lambda: cmd_report(args),
        "batch": lambda: cmd_batch(args),
        "summary": lambda: cmd_summary(args),
    }
    if args.command not in commands:
        parser.print_help()
        return EXIT_USAGE
    try:
        return commands[args.command]()
    except UsageError as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        number = getattr(exc, "signum", signal.SIGINT)
        print(f"\ngrader: stopped ({signal.Signals(number).name}); nothing was left running", file=sys.stderr)
        return 128 + number
    except BrokenPipeError:  # the output went to a pager or `head` that closed early
        sys.stderr.close()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

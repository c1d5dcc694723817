"""The `grader` command: list, check and verify."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader import __version__
from grader.catalogue import UsageError, all_chapters, course_root, exercise_dir, find_chapter

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grader",
        description="Check your exercises for the course FastAPI in Production.",
        epilog="Examples: grader list · grader check chapter-1 · grader check 1 --path ~/my-copy",
    )
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("list", help="list the chapters and their checks")

    check = commands.add_parser("check", help="grade a chapter's exercise")
    check.add_argument("chapter", metavar="CHAPTER", help="chapter-1, or just 1")
    check.add_argument("--path", type=Path, help="grade this folder instead of exercises/chapter-N")
    check.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    check.add_argument("--junit", type=Path, metavar="FILE", help="also write the results as JUnit XML")
    check.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                       help="time limit for each request (default: 3)")

    verify = commands.add_parser("verify", help="the course's self-test: solutions pass, starters and mutants fail")
    verify.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters to verify (default: all)")
    return parser


def cmd_list() -> int:
    root = course_root()
    for chapter in all_chapters():
        where = root / "exercises" / chapter.slug if root else None
        folder = f"exercises/{chapter.slug}" if where and where.is_dir() else "(exercise folder missing)"
        print(f"{chapter.slug:<11} {chapter.title}  [{len(chapter.checks)} checks, {folder}]")
        for check in chapter.checks:
            print(f"    {check.name:<42} {check.title}")
    return EXIT_OK


def _learner_dir(chapter, path: Path | None) -> Path:
    folder = (path or exercise_dir(chapter)).expanduser().resolve()
    if not folder.is_dir():
        raise UsageError(f"There is no folder {folder}.")
    main = folder / Path(*chapter.app_module.split(".")).with_suffix(".py")
    if not main.is_file() and folder.name == chapter.package and (folder / main.name).is_file():
        raise UsageError(f"{folder} is the {chapter.package!r} package itself; give its parent: --path {folder.parent}")
    if not main.is_file():
        restore = f" `git checkout -- exercises/{chapter.slug}` restores the starter." if path is None else ""
        raise UsageError(
            f"{main} is missing. The folder must hold the {chapter.package!r} package of this chapter's exercise."
            + restore
        )
    return folder


def cmd_check(args: argparse.Namespace) -> int:
    from grader.report import ConsoleReport, write_json, write_junit
    from grader.runner import Limits, Runner

    chapter = find_chapter(args.chapter)
    folder = _learner_dir(chapter, args.path)
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    report = ConsoleReport()
    report.start(chapter, folder)
    runner = Runner(chapter, folder, Limits(request=args.timeout), on_result=report.result)
    run = runner.run()
    if run.load_problem:
        report.load_problem(chapter, run.load_problem)
    if run.integrity_problem:
        report.integrity_problem(run.integrity_problem)
    again = f"grader check {chapter.slug}" + (f" --path {args.path}" if args.path else "")
    report.summary(run, again)
    if args.json:
        write_json(run, args.json)
    if args.junit:
        write_junit(run, args.junit)
    return EXIT_OK if run.all_passed else EXIT_FAILED


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


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "check":
            return cmd_check(args)
        if args.command == "verify":
            return cmd_verify(args)
        parser.print_help()
        return EXIT_USAGE
    except UsageError as exc:
        print(f"grader: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("grader: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a pager or `head` that closed early
        sys.stderr.close()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""Grading from a Jupyter cell: `check()` and the `%grader` magic, for Binder and JupyterLab.

    %load_ext grader.notebook
    %grader start chapter-1
    %grader check chapter-1

The result renders as an HTML table in a notebook and as the console report in a terminal.
A usage mistake (an unknown chapter, a missing folder) renders as a short message instead of
a traceback, because in a notebook a traceback buries the one line that matters.

IPython is imported only inside the magic, so this module imports without it.
"""

from __future__ import annotations

import argparse
import html
import io
import re
import shlex
from pathlib import Path

from grader.catalogue import UsageError, course_root, exercise_dir, find_chapter, learner_folder
from grader.progress import Progress
from grader.report import MARKS, ladder, score_line
from grader.runner import ERROR, FAILED, NOT_RUN, PASSED, TIMEOUT, RunResult, run_apart

# White text on these backgrounds has a contrast ratio of at least 4.5:1 (WCAG AA), and a
# badge reads the same on JupyterLab's light and dark themes, unlike coloured text.
_BADGE_COLOURS = {PASSED: "#1a7f37", FAILED: "#c62828", ERROR: "#c62828", TIMEOUT: "#8a5a00",
                  NOT_RUN: "#57606a"}
_CELL = "text-align:left;vertical-align:top;padding:4px 8px;"  # JupyterLab right-aligns cells
_PRE = ("white-space:pre-wrap;word-break:break-word;margin:4px 0;padding:6px 8px;"
        "background:rgba(127,127,127,0.12);border-radius:4px;font-size:0.9em;")
_PROBLEM = "border-left:4px solid #c62828;padding:4px 12px;margin:8px 0;"


class NotebookResult:
    """A grading run (or the usage error that stopped it), displayable in a notebook."""

    def __init__(self, run: RunResult | None = None, error: str | None = None, command: str | None = None,
                 failed_before: dict[str, int] | None = None) -> None:
        self.run = run
        self.error = error
        self.command = command  # what to run again, shown under a score that is not full
        # Failing runs in a row before this one, per check: the hint ladder, as in the terminal.
        self.failed_before = failed_before or {}

    @property
    def all_passed(self) -> bool:
        return self.run is not None and self.run.all_passed

    # -- plain text ----------------------------------------------------------------------

    def text(self) -> str:
        """The console report, without colour: what `grader check` would have printed."""
        if self.run is None:
            return f"grader: {self.error}"
        from grader.report import ConsoleReport

        out = io.StringIO()
        report = ConsoleReport(out, colour=False, failed_before=lambda name: self.failed_before.get(name, 0))
        report.start(self.run.chapter, self.run.learner_dir, len(self.run.results))
        for result in self.run.results:
            report.result(result)
        if self.run.load_problem:
            report.load_problem(self.run.chapter, self.run.load_problem)
        if self.run.integrity_problem:
            report.integrity_problem(self.run.integrity_problem)
        again = self.command or f"%grader check {self.run.chapter.slug}"
        report.summary(self.run, f"Fix the first failing check, then run `{again}` again.")
        return out.getvalue().rstrip("\n")

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text())

    # -- HTML ----------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        if self.run is None:
            return (f'<div role="alert" style="{_PROBLEM}"><strong>grader:</strong> '
                    f"{html.escape(self.error or '')}</div>")
        run = self.run
        parts = ['<div class="grader-result" style="max-width:60em">',
                 f"<p style=\"margin:4px 0\"><strong>{html.escape(score_line(run))}</strong><br>"
                 f"Chapter {run.chapter.number} · {html.escape(run.chapter.title)} · "
                 f"<code>{html.escape(_shown(run.learner_dir))}</code></p>"]
        if run.sandbox == "none":  # as the terminal says it: on Binder, say, the app runs beside the grader
            parts.append(f'<p style="margin:4px 0">Note: your app ran without a sandbox: '
                         f"{html.escape(run.sandbox_detail)}.</p>")
        for heading, problem in _problems(run):
            parts.append(f'<div role="alert" style="{_PROBLEM}"><strong>{html.escape(heading)}</strong>'
                         f'<pre style="{_PRE}">{html.escape(problem)}</pre></div>')
        parts.append('<table style="border-collapse:collapse;margin:4px 0">'
                     f'<thead><tr><th scope="col" style="{_CELL}">Status</th>'
                     f'<th scope="col" style="{_CELL}">Check</th>'
                     f'<th scope="col" style="{_CELL}">What it checks</th></tr></thead><tbody>')
        for result in run.results:
            parts.append(_row(result, self.failed_before.get(result.check.name, 0) + 1))
        parts.append("</tbody></table>")
        if run.done:
            parts.append(f'<p style="margin:4px 0">Chapter {run.chapter.number} is done. Well done!</p>')
        elif run.all_passed:
            parts.append(f'<p style="margin:4px 0">These checks pass. For the chapter\'s score, run all '
                         f'{len(run.chapter.checks)}: <code>%grader check {run.chapter.slug}</code>.</p>')
        elif not _problems(run):
            again = html.escape(self.command or f"%grader check {run.chapter.slug}")
            parts.append(f"<p style=\"margin:4px 0\">Fix the first failing check, then run <code>{again}</code> again.</p>")
        parts.append("</div>")
        return "".join(parts)


_UNLOADED = "Your app could not be loaded, so no check could run."
_UNTRUSTED = "The checks were tampered with, so this run's results cannot be trusted."


def _problems(run: RunResult) -> list[tuple[str, str]]:
    """Problems with the whole run, as (heading, details)."""
    found = [(_UNLOADED, run.load_problem), (_UNTRUSTED, run.integrity_problem)]
    return [(heading, text) for heading, text in found if text]


def _shown(folder: Path) -> str:
    """A folder inside the course as a path from its root (exercises/chapter-1), else in full."""
    root = course_root()
    if root is not None and folder.is_relative_to(root):
        return folder.relative_to(root).as_posix()
    return str(folder)


def _row(result, failing_runs: int = 1) -> str:
    status = result.status
    badge = (f'<span title="{status}" aria-label="{status}" role="img" style="display:inline-block;'
             f"min-width:1.4em;text-align:center;border-radius:4px;color:#fff;font-weight:bold;"
             f'background:{_BADGE_COLOURS.get(status, "#57606a")}">{MARKS.get(status, "?")}</span>')
    row = (f'<tr><td style="{_CELL}">{badge}</td>'
           f'<td style="{_CELL}"><code>{html.escape(result.check.name)}</code></td>'
           f'<td style="{_CELL}">{html.escape(result.check.title)}</td></tr>')
    if result.passed:
        return row
    detail = f'<pre style="{_PRE}">{html.escape(result.message)}</pre>' if result.message else ""
    hint = "".join(f'<p style="margin:4px 0"><strong>{html.escape(label.strip())}</strong> {_inline_code(text)}</p>'
                   for label, text in ladder(result.check, failing_runs))
    if result.about_app or result.status == NOT_RUN:
        return row + f'<tr><td style="{_CELL}"></td><td colspan="2" style="{_CELL}">{detail}</td></tr>'
    return row + f'<tr><td style="{_CELL}"></td><td colspan="2" style="{_CELL}">{detail}{hint}</td></tr>'


def _inline_code(text: str) -> str:
    """Escape `text`, then show its Markdown `code spans` (as hints are written) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def check(chapter: str = "chapter-1", path: str | Path | None = None, timeout: float = 3.0,
          command: str | None = None, record: bool = True, only: list[str] | None = None) -> NotebookResult:
    """Grade a chapter's exercise (or `path`) like `grader check`, printing nothing.

    `command` is what the result tells the learner to run again; by default a `check()` call.
    `only` names the checks to run (`grader check --only`), all of them when it is None.
    """
    try:
        found = find_chapter(str(chapter))
        if not timeout > 0:
            raise UsageError("The timeout must be a positive number of seconds.")
        for name in only or ():
            found.check(name)  # an unknown name is a usage error here, not a failed run
        folder = learner_folder(found, path)  # after the command's own mistakes, whatever the folder
        progress = Progress()
        failed_before = {check.name: progress.streak(found.slug, check.name) if record else 0
                         for check in found.checks}
        # In a process of its own, as `grader check` (which records the run in the progress):
        # the kernel never runs pytest, and never shares a process with the grading.
        run = run_apart(found, folder, timeout, record=record, only=only)
    except (UsageError, RuntimeError) as exc:
        return NotebookResult(error=str(exc))
    if command is None:
        where = f", path={str(path)!r}" if path is not None else ""
        command = f"check({found.slug!r}{where})"
    return NotebookResult(run, command=command, failed_before=failed_before)


class Message:
    """What a command other than `check` has to say, as text or as a paragraph of HTML."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text)

    def _repr_html_(self) -> str:
        return f'<p style="margin:4px 0">{_inline_code(self.text).replace(chr(10), "<br>")}</p>'


def start(chapter: str = "chapter-1", path: str | Path | None = None) -> Message | NotebookResult:
    """Create the chapter's exercise folder (or `path`) like `grader start`; an existing one is left as it is."""
    from grader.workspace import start as start_folder

    try:
        found = find_chapter(str(chapter))
        folder = Path(path).expanduser().resolve() if path is not None else exercise_dir(found)
        return Message(start_folder(found, folder, "%grader", f" --path {path}" if path is not None else ""))
    except UsageError as exc:
        return NotebookResult(error=str(exc))


# -- the %grader magic -----------------------------------------------------------------------


class _MagicParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting: `exit_on_error=False` alone misses some errors."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None):
        raise _HelpShown(message or "")


class _HelpShown(Exception):
    """`--help` was asked for; argparse has already printed it."""


def _magic_parser() -> _MagicParser:
    parser = _MagicParser(prog="%grader", exit_on_error=False,
                          description="Grade a chapter's exercise from a notebook.",
                          epilog="Example: %grader check chapter-1 --path ../my-copy")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_MagicParser)
    start_parser = commands.add_parser("start", help="create your exercise folder for a chapter", exit_on_error=False)
    start_parser.add_argument("chapter", metavar="CHAPTER", help="chapter-1, or just 1")
    start_parser.add_argument("--path", help="create this folder instead of exercises/chapter-N")
    check_parser = commands.add_parser("check", help="grade a chapter's exercise", exit_on_error=False)
    check_parser.add_argument("chapter", metavar="CHAPTER", help="chapter-1, or just 1")
    check_parser.add_argument("--path", help="grade this folder instead of exercises/chapter-N")
    check_parser.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                              help="time limit for each request (default: 3)")
    check_parser.add_argument("--no-record", action="store_true",
                              help="leave your progress file alone (the hints then start from the first rung)")
    check_parser.add_argument("--only", action="append", metavar="CHECK",
                              help="run only this check (repeat for more); such a run is not recorded as a score")
    commands.add_parser("doctor", help="check the set-up of this notebook's environment", exit_on_error=False)
    return parser


def grader_magic(line: str) -> NotebookResult | Message | None:
    """`%grader start CHAPTER [--path DIR]`, `%grader check CHAPTER [--path DIR] [--timeout S] [--only CHECK]`
    or `%grader doctor`.

    Returns the result rather than displaying it, so IPython shows it once as the cell's output
    (and tests can inspect it).
    """
    parser = _magic_parser()
    try:
        args = parser.parse_args(shlex.split(line))
    except _HelpShown:
        return None
    except (UsageError, argparse.ArgumentError, ValueError) as exc:  # ValueError: unclosed quote
        return NotebookResult(error=str(exc))
    if args.command == "start":
        return start(args.chapter, args.path)
    if args.command == "check":
        again = f"%grader {line.strip()}".replace(" --no-record", "")
        return check(args.chapter, args.path, args.timeout, command=again, record=not args.no_record,
                     only=args.only)
    if args.command == "doctor":
        from grader.doctor import run_doctor

        run_doctor()
        return None
    return NotebookResult(error=f"say what to do, e.g. `%grader check chapter-1`.\n{parser.format_usage().strip()}")


def load_ipython_extension(ipython) -> None:
    """Called by `%load_ext grader.notebook`."""
    ipython.register_magic_function(grader_magic, magic_kind="line", magic_name="grader")

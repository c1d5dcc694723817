"""A room of learners: one learner's report, a batch of submissions graded at once, and a
summary of many reports for the facilitator.

One file format serves all three, `grader-report/1` (grader/report.schema.json): who the
learner is, when the report was made, which grader made it, and per chapter the
`grader-result/1` object of `grader check --json` (with its suite fingerprint and sandbox),
or why there is none. `grader report` fills it from the learner's own latest full runs (kept
by `grader check` in the state folder: offline and instant); `grader batch` fills it by
grading each submission in a `grader check` process of its own, as `grader verify` does.
"""

from __future__ import annotations

import getpass
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from grader import __version__, manifest
from grader.catalogue import Chapter, UsageError, all_chapters, course_root, learner_folder
from grader.progress import Progress, state_dir
from grader.runner import visible

REPORT_SCHEMA = "grader-report/1"
GRADED, NOT_TRIED, NOT_GRADED = "graded", "not-tried", "not-graded"
STUCK = 0.5  # a check that fewer than this share of the room passes is a sticking point


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def new_report(name: str, learner_id: str, origin: str, chapters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"schema": REPORT_SCHEMA, "learner": {"name": name, "id": learner_id}, "created": _now(),
            "origin": origin, "grader_version": __version__, "fingerprint": manifest.fingerprint(),
            "chapters": chapters}


def chapter_entry(status: str, when: str | None = None, source: str | None = None, problem: str | None = None,
                  result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "when": when, "source": source, "problem": problem, "result": result}


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def file_name(name: str) -> str:
    """A learner's name as a file name: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "learner"


# -- grader report: one learner ----------------------------------------------------------------


def default_name() -> str:
    """The name git knows the learner by (as their commits show it), else their login name."""
    try:
        found = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=10,
                               cwd=course_root() or Path.cwd(), check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found:
        return found
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "learner"


def learner_id() -> str:
    """A random id kept beside the progress file: two learners with the same name stay two rows
    in a summary, and the same learner's reports from one clone stay one."""
    path = state_dir() / "learner-id"
    try:
        kept = path.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{12}", kept):
            return kept
    except OSError:
        pass
    made = uuid.uuid4().hex[:12]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(made + "\n")
    except OSError:
        pass  # a read-only state folder: this report's id is its own
    return made


def learner_report(name: str) -> dict[str, Any]:
    """The learner's report from the latest full run of each chapter that `grader check` kept."""
    progress = Progress()
    root = course_root()
    chapters = {}
    for chapter in all_chapters():
        kept = progress.last_run(chapter.slug)
        if kept is None:
            chapters[chapter.slug] = chapter_entry(NOT_TRIED)
            continue
        result = kept["result"]
        folder = Path(str(result.get("path", "")))
        if root is not None and folder.is_absolute() and folder.is_relative_to(root):
            result["path"] = str(folder.relative_to(root))  # exercises/chapter-1: no home folder in a handed-in file
        chapters[chapter.slug] = chapter_entry(GRADED, kept.get("when"), result.get("path"), None, result)
    return new_report(name, learner_id(), "progress", chapters)


# -- grader batch: many submissions ------------------------------------------------------------

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")


@dataclass
class Submission:
    name: str  # the learner, as the folder or repository is named
    source: str  # as given, for the report
    folder: Path | None = None  # a folder to grade as it is
    repository: str | None = None  # a repository to clone (a URL or a local path)
    problem: str | None = None  # why it cannot be graded at all


def _is_repository(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def _is_submission_folder(path: Path, chapter: Chapter) -> bool:
    return (path / chapter.package).is_dir()


def _one(path: Path, source: str) -> Submission:
    name = visible(path.name.removesuffix(".git") or source)
    if _is_repository(path):
        return Submission(name, source, repository=str(path.resolve()))
    return Submission(name, source, folder=path)


def collect(chapter: Chapter, sources: list[str]) -> list[Submission]:
    """The submissions that `sources` name, each with a name that is unique in the batch.

    A source is a learner's folder (it holds the chapter's package), a git repository (a URL,
    or a folder with `.git` or a bare one: cloned, and graded as committed), or else a folder of
    submissions: each of its folders that is not hidden is one. A source that is missing or not
    a folder is a submission too, whose report says what is wrong, so the batch goes on.
    """
    found: list[Submission] = []
    for source in sources:
        path = Path(source).expanduser()
        shown = visible(source)
        if _URL.match(source) and not path.exists():
            found.append(Submission(visible(source.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
                                            .removesuffix(".git")) or "repository", shown, repository=source))
        elif not path.exists():
            found.append(Submission(visible(path.name or source), shown, problem=f"There is no folder {shown}."))
        elif not path.is_dir():
            found.append(Submission(visible(path.name), shown, problem=(
                f"{shown} is a file, not a folder: a submission is a learner's folder or a git repository.")))
        elif _is_repository(path) or _is_submission_folder(path, chapter):
            found.append(_one(path, shown))
        else:
            inside = sorted(entry for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
            # No folders inside: a learner's folder that lacks the package; grading it says so.
            found += [_one(entry, visible(str(entry))) for entry in inside] or [_one(path, shown)]
    taken: set[str] = set()
    for submission in found:  # two folders called alice (in two sources) are alice and alice-2
        name, number = submission.name, 1
        while file_name(name).lower() in taken:  # a report's file is named after its learner
            number += 1
            name = f"{submission.name}-{number}"
        submission.name = name
        taken.add(file_name(name).lower())
    return found


def clone(repository: str, into: Path) -> Path:
    """A shallow clone of the repository's default branch (a local path is cloned as file://,
    which honours --depth); raises UsageError with git's own words when it fails."""
    url = Path(repository).resolve().as_uri() if Path(repository).exists() else repository
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never wait for a password nobody will type
    try:
        done = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--no-tags", "--", url, str(into)],
                              capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"{visible(repository)} could not be cloned: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
        said = said or (lines[-1] if lines else f"git exit status {done.returncode}")
        raise UsageError(f"{visible(repository)} could not be cloned: {visible(said)}")
    return into


def grade_submission(chapter: Chapter, submission: Submission, scratch: Path, env: dict[str, str],
                     request_limit: float) -> dict[str, Any]:
    """One submission's report. Whatever is wrong with the submission ends up in the report."""
    from grader.runner import check_apart

    when = _now()
    try:
        if submission.problem:
            raise UsageError(submission.problem)
        folder = submission.folder
        if submission.repository is not None:
            folder = clone(submission.repository, scratch / "clones" / file_name(submission.name))
        try:  # a missing package is said plainly, without a run, in the facilitator's own words for the folder
            learner_folder(chapter, folder)
        except UsageError as exc:
            raise UsageError(str(exc).replace(str(folder.resolve()), submission.source)) from None
        # The record the grading process wrote, fingerprints included, as it wrote it.
        result = check_apart(chapter, folder, request_limit, env=env, record=False, warm=True)
        result["path"] = submission.source  # the facilitator's name for it, not a scratch clone's
        entry = chapter_entry(GRADED, when, submission.source, None, result)
    except (UsageError, RuntimeError, OSError) as exc:
        entry = chapter_entry(NOT_GRADED, when, submission.source, visible(str(exc)))
    except Exception as exc:  # a grader bug must not stop the batch either; the report says what it was
        entry = chapter_entry(NOT_GRADED, when, submission.source, visible(
            f"The grader failed on this submission ({type(exc).__name__}: {exc}); please report it."))
    return new_report(submission.name, f"batch:{file_name(submission.name)}", "batch", {chapter.slug: entry})


def report_line(report: dict[str, Any], slug: str) -> str:
    """One finished submission, as the batch prints it."""
    entry = report["chapters"][slug]
    name = report["learner"]["name"]
    if entry["result"] is None:
        return f"! {name:<28} not graded: {entry['problem'].splitlines()[0]}"
    result = entry["result"]
    passed, total = result["score"]["passed"], result["score"]["total"]
    mark = "✔" if passed == total and not result["load_problem"] else "✘"
    why = " (the app could not be loaded)" if result["load_problem"] else ""
    return f"{mark} {name:<28} {passed}/{total} checks passed{why} ({result['duration']:.1f} s)"


def batch(chapter: Chapter, sources: list[str], out: Path, workers: int, request_limit: float = 3.0,
          stream: TextIO | None = None) -> list[dict[str, Any]]:
    """Grade every submission side by side and write one report each into `out`.

    Each grading is a `grader check` of its own (in its own sandbox, on a copy of the folder),
    so the submissions cannot affect one another or the batch. A run keeps about one core busy
    (the checker and the app take turns), with gaps while its processes start: a few more runs
    than cores fill the gaps.
    """
    from grader.verify import _Display

    stream = stream or sys.stdout
    submissions = collect(chapter, sources)
    out.mkdir(parents=True, exist_ok=True)
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="grader-batch-") as scratch:
        # The runs' progress goes to a scratch state folder: a batch is not the facilitator's attempt.
        env = {**os.environ, "GRADER_STATE_DIR": str(Path(scratch) / "state")}
        with _Display(stream, len(submissions)) as display:
            running: set[str] = set()

            def grade(submission: Submission) -> dict[str, Any]:
                running.add(submission.name)
                display.running(running)
                try:
                    return grade_submission(chapter, submission, Path(scratch), env, request_limit)
                finally:
                    running.discard(submission.name)

            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                futures = [pool.submit(grade, submission) for submission in submissions]
                for future in as_completed(futures):
                    report = future.result()
                    write_report(report, out / f"{file_name(report['learner']['name'])}.{chapter.slug}.json")
                    reports.append(report)
                    display.done(report_line(report, chapter.slug))
                    display.running(running)
            finally:  # stopped (Ctrl-C): the submissions not yet started are not started at all
                pool.shutdown(wait=True, cancel_futures=True)
    return reports


# -- grader summary: the room at a glance --------------------------------------------------------


def _report_problem(data: Any) -> str | None:
    """Why `data` is not a grader-report/1 the summary can read, or None when it is."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("schema") != REPORT_SCHEMA:
        if data.get("schema") == "grader-result/1":
            return "a single result of `grader check --json`, not a report (`grader report` makes one)"
        return f"its schema is {visible(str(data.get('schema')))[:60]!s}, not {REPORT_SCHEMA}"
    learner = data.get("learner")
    if not isinstance(learner, dict) or not all(isinstance(learner.get(key), str) for key in ("name", "id")):
        return "it names no learner (learner.name and learner.id)"
    if not isinstance(data.get("chapters"), dict):
        return "it has no chapters"
    for slug, entry in data["chapters"].items():
        if not isinstance(entry, dict) or entry.get("status") not in (GRADED, NOT_TRIED, NOT_GRADED):
            return f"{visible(str(slug))[:40]} has no valid status"
        result = entry.get("result")
        if entry["status"] == GRADED:
            if not isinstance(result, dict) or result.get("schema") != "grader-result/1":
                return f"{visible(str(slug))[:40]} is graded but holds no grader-result/1"
            checks, score = result.get("checks"), result.get("score")
            if (not isinstance(checks, list) or not isinstance(score, dict)
                    or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                               and isinstance(c.get("status"), str) for c in checks)
                    or not all(isinstance(score.get(key), int) for key in ("passed", "total"))):
                return f"{visible(str(slug))[:40]}: its result lacks checks or a score"
    return None


def load_reports(folder: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[Path, str]]]:
    """Every report in `folder`, and every other file there with the reason it was skipped."""
    reports, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if not path.is_file():  # a pipe or a device: reading it could wait for ever
            skipped.append((path, "not a regular file"))
            continue
        if path.suffix != ".json":
            skipped.append((path, "not a .json file"))
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            skipped.append((path, f"not readable as JSON ({visible(str(exc))[:80]})"))
            continue
        problem = _report_problem(data)
        if problem:
            skipped.append((path, problem))
        else:
            reports.append((path, data))
    return reports, skipped


@dataclass
class Row:
    name: str
    key: tuple[str, str]
    label: str = ""
    chapters: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CheckRate:
    chapter: str
    name: str
    title: str
    passed: int = 0
    graded: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class Summary:
    rows: list[Row]
    chapters: list[str]
    rates: dict[str, list[CheckRate]]
    notes: list[str]
    skipped: list[tuple[Path, str]]

    def stuck(self) -> list[CheckRate]:
        """The room's sticking points: the checks that fewer than half the learners graded on
        them pass, the fewest first (a tie keeps the chapter's order)."""
        every = [rate for rates in self.rates.values() for rate in rates if rate.graded and rate.rate < STUCK]
        return sorted(every, key=lambda rate: rate.rate)


def _chapter_number(slug: str) -> int:
    match = re.fullmatch(r"chapter-(\d+)", slug)
    return int(match.group(1)) if match else 10**6


def summarise(folder: Path) -> Summary:
    """Read the reports in `folder` into rows (one per learner) and per-check pass rates."""
    reports, skipped = load_reports(folder)
    rows: dict[tuple[str, str], Row] = {}
    notes: list[str] = []
    for path, data in reports:
        name = visible(data["learner"]["name"])
        key = (name, data["learner"]["id"])
        row = rows.setdefault(key, Row(name, key))
        for slug, entry in data["chapters"].items():
            slug = visible(slug)
            earlier = row.chapters.get(slug)
            if earlier is None or earlier["status"] == NOT_TRIED:
                row.chapters[slug] = entry
            elif entry["status"] != NOT_TRIED:  # two runs of one chapter: the later one counts
                notes.append(f"{name}: more than one report holds {slug}; the latest run is shown")
                if str(entry.get("when")) >= str(earlier.get("when")):
                    row.chapters[slug] = entry
    names: dict[str, list[Row]] = {}
    for row in rows.values():
        names.setdefault(row.name, []).append(row)
    for name, same in names.items():
        for number, row in enumerate(same, 1):
            row.label = name if len(same) == 1 else f"{name} ({number})"
        if len(same) > 1:
            notes.append(f"{len(same)} learners are named {name}; their reports come from different places, so "
                         f"they are shown apart as {name} (1) … ({len(same)})")
    chapters = sorted({slug for row in rows.values() for slug in row.chapters}, key=_chapter_number)
    known = {chapter.slug: chapter for chapter in all_chapters()}
    rates: dict[str, list[CheckRate]] = {}
    for slug in chapters:
        by_name: dict[str, CheckRate] = {}
        if slug in known:  # the chapter's own order: its checks build on one another
            by_name = {check.name: CheckRate(slug, check.name, check.title) for check in known[slug].checks}
        fingerprints = set()
        for row in rows.values():
            entry = row.chapters.get(slug)
            if not entry or entry["status"] != GRADED:
                continue
            fingerprints.add(entry["result"].get("suite_fingerprint"))
            for check in entry["result"]["checks"]:
                rate = by_name.setdefault(check["name"], CheckRate(slug, visible(check["name"]),
                                                                   visible(str(check.get("title", "")))))
                rate.graded += 1
                rate.passed += check["status"] == "passed"
        if len(fingerprints) > 1:
            notes.append(f"{slug} was graded with {len(fingerprints)} different versions of its checks "
                         "(suite fingerprints differ): compare its scores with care")
        rates[slug] = [rate for rate in by_name.values() if rate.graded]
    ordered = sorted(rows.values(), key=lambda row: (row.label.lower(), row.label))
    return Summary(ordered, chapters, rates, notes, skipped)


def cell(entry: dict[str, Any] | None) -> tuple[str, float | None, str]:
    """A learner's chapter as the table shows it: text, share of checks passed, and a detail."""
    if entry is None:
        return "–", None, ""
    if entry["status"] == NOT_TRIED:
        return "not tried", None, ""
    if entry["status"] == NOT_GRADED:
        return "not graded", 0.0, visible(str(entry.get("problem") or ""))
    result = entry["result"]
    passed, total = result["score"]["passed"], result["score"]["total"]
    if result.get("integrity_problem"):
        return "untrusted", 0.0, visible(str(result["integrity_problem"]))
    detail = visible(str(result["load_problem"])) if result.get("load_problem") else ""
    return f"{passed}/{total}" + (" (no load)" if detail else ""), passed / total if total else 0.0, detail


def print_summary(summary: Summary, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=stream)

    for path, reason in summary.skipped:
        say(f"skipped {visible(path.name)}: {reason}")
    for note in summary.notes:
        say(f"note: {note}")
    if summary.skipped or summary.notes:
        say()
    if not summary.rows:
        say("No reports to summarise.")
        return
    width = max(len("learner"), *(len(row.label) for row in summary.rows)) + 2
    say("Checks passed, by learner and chapter")
    say("learner".ljust(width) + "".join(slug.ljust(18) for slug in summary.chapters).rstrip())
    for row in summary.rows:
        say(row.label.ljust(width) + "".join(cell(row.chapters.get(slug))[0].ljust(18)
                                             for slug in summary.chapters).rstrip())
    stuck = summary.stuck()
    if stuck:
        say()
        say("Where the room is stuck: checks that fewer than half the learners pass")
        for rate in stuck:
            say(f"  {rate.passed:>3}/{rate.graded:<3} {rate.rate:>4.0%}  {rate.chapter} {rate.name}: {rate.title}")
    for slug in summary.chapters:
        say()
        say(f"{slug}: each check's pass rate")
        for rate in summary.rates[slug]:
            marker = "  ◀ stuck" if rate in stuck else ""
            say(f"  {rate.passed:>3}/{rate.graded:<3} {rate.rate:>4.0%}  {_bar(rate.rate)}  {rate.name}{marker}")


def _bar(rate: float, width: int = 10) -> str:
    filled = round(rate * width)
    return "█" * filled + "·" * (width - filled)


def _colour(rate: float) -> str:
    """Low rates warm (orange-red), high rates cool (blue): a scale that red-green colour blindness
    does not flatten; the number is always printed in the cell too."""
    return f"hsl({round(10 + 200 * rate)}, 75%, {round(80 - 8 * abs(rate - 0.5))}%)"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; background: #fff; max-width: 70rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.none { color: #666; }
.stuck { font-weight: bold; }
.legend span { display: inline-block; padding: 0.2rem 0.5rem; border: 1px solid #bbb; }
.notes li, .skipped li { margin: 0.2rem 0; }
"""


def summary_html(summary: Summary, title: str = "Class summary") -> str:
    """The summary as one self-contained page (no external files): escaped throughout, because
    names, titles and messages come from the learners' reports."""
    e = lambda text: html.escape(str(text), quote=True)  # noqa: E731 - one letter keeps the markup readable
    stuck = summary.stuck()
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
             "<link rel=\"icon\" href=\"data:,\">",  # no request for /favicon.ico either
             f"<style>{_STYLE}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p>{len(summary.rows)} learner(s), {len(summary.chapters)} chapter(s). "
             "Each cell holds the number; its colour only repeats it.</p>"]
    if summary.notes:
        parts.append("<ul class=\"notes\">" + "".join(f"<li>{e(note)}</li>" for note in summary.notes) + "</ul>")
    if summary.skipped:
        parts.append("<p>Files that are not reports were skipped:</p><ul class=\"skipped\">"
                     + "".join(f"<li>{e(path.name)}: {e(reason)}</li>" for path, reason in summary.skipped) + "</ul>")
    if stuck:
        parts.append("<h2 id=\"stuck\">Where the room is stuck</h2><ol id=\"stuck-list\">" + "".join(
            f"<li><strong>{e(rate.chapter)} {e(rate.name)}</strong> ({e(rate.title)}): "
            f"{rate.passed} of {rate.graded} learners pass ({rate.rate:.0%})</li>" for rate in stuck) + "</ol>")
    elif summary.rows:
        parts.append("<p id=\"stuck\">No check stumps more than half the room.</p>")
    parts.append("<h2 id=\"learners\">Checks passed, by learner and chapter</h2><table id=\"learners-table\">"
                 "<caption>Checks passed out of the chapter's checks</caption><thead><tr><th scope=\"col\">Learner</th>"
                 + "".join(f"<th scope=\"col\" class=\"num\">{e(slug)}</th>" for slug in summary.chapters)
                 + "</tr></thead><tbody>")
    for row in summary.rows:
        cells = []
        for slug in summary.chapters:
            text, rate, detail = cell(row.chapters.get(slug))
            style = f" style=\"background: {_colour(rate)}\"" if rate is not None else ""
            tip = f" title=\"{e(detail)}\"" if detail else ""
            kind = "num" if rate is not None else "num none"
            cells.append(f"<td class=\"{kind}\"{style}{tip}>{e(text)}</td>")
        parts.append(f"<tr><th scope=\"row\">{e(row.label)}</th>{''.join(cells)}</tr>")
    parts.append("</tbody></table>")
    parts.append("<p class=\"legend\">Colour scale: " + "".join(
        f"<span style=\"background: {_colour(share / 4)}\">{share * 25}%</span>" for share in range(5)) + "</p>")
    for slug in summary.chapters:
        parts.append(f"<h2 id=\"{e(slug)}\">{e(slug)}: each check's pass rate</h2>"
                     f"<table class=\"heatmap\" data-chapter=\"{e(slug)}\"><caption>Learners who pass each check of "
                     f"{e(slug)}, in the chapter's order; ▼ marks the room's sticking points</caption>"
                     "<thead><tr><th scope=\"col\">Check</th><th scope=\"col\">What it asks</th>"
                     "<th scope=\"col\" class=\"num\">Pass rate</th></tr></thead><tbody>")
        for rate in summary.rates[slug]:
            mark = "▼ " if rate in stuck else ""
            kind = ' class="stuck"' if mark else ""
            parts.append(f"<tr data-check=\"{e(rate.name)}\"{kind}>"
                         f"<th scope=\"row\">{mark}{e(rate.name)}</th><td>{e(rate.title)}</td>"
                         f"<td class=\"num\" style=\"background: {_colour(rate.rate)}\">"
                         f"{rate.passed}/{rate.graded} ({rate.rate:.0%})</td></tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)

"""`grader doctor`: checks the learner's set-up and says how to fix each problem.

Written to run in a broken environment: module level needs only the standard library, and
the rest of the grader (which needs Python 3.11's tomllib) and `packaging` are imported
inside the checks, so a wrong Python or a half-installed venv gets a finding, not a crash.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
MIN_PYTHON = (3, 11)
_MARKS = {OK: "✔", WARN: "!", FAIL: "✘", INFO: "·"}
_PIP_FIX = "pip install -r requirements.txt"
_VENV_FIX = ("python3.11 -m venv .venv, then activate it (`source .venv/bin/activate`; on Windows "
             "`.venv\\Scripts\\activate`) and run `pip install -r requirements.txt` in the course's folder.")


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN or FAIL
    what: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.level == OK


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info >= MIN_PYTHON:
        return Finding(OK, f"Python {version}")
    return Finding(FAIL, f"Python {version} is too old: the course needs 3.11 or newer",
                   "Install Python 3.11 or newer (python.org, or your system's package manager), then make "
                   f"a virtual environment with it: {_VENV_FIX}")


def _virtual_env() -> Finding:
    if sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX") == sys.prefix:
        return Finding(OK, f"Running inside a virtual environment ({sys.prefix})")
    return Finding(WARN, f"Not running inside a virtual environment ({sys.executable})",
                   "Installing the course into your system's Python can clash with other projects. Make one "
                   f"for the course: {_VENV_FIX}")


def _grader_command(root: Path) -> Finding:
    """`grader: command not found` is the usual sign of an environment that is not active."""
    if shutil.which("grader"):
        return Finding(OK, "The `grader` command is on PATH")
    try:
        metadata.version("fastapi-course-grader")
    except metadata.PackageNotFoundError:
        return Finding(WARN, "The grader is not installed, so there is no `grader` command",
                       f"Run `pip install -e .` in {root}. Until then, `python -m grader` works from that folder.")
    scripts = Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin")
    activate = f"`{scripts / 'activate'}`" if os.name == "nt" else f"`source {scripts / 'activate'}`"
    return Finding(WARN, f"The `grader` command is not on PATH (it is in {scripts})",
                   f"Activate the course's environment ({activate}), or run `python -m grader` instead.")


def _requirements(root: Path) -> list[Finding]:
    path = root / "requirements.txt"
    if not path.is_file():
        return [Finding(FAIL, f"{path} is missing, so the course's clone seems incomplete",
                        f"Run `git status` in {root} to see what is missing and `git checkout -- .` to restore "
                        "it, or clone the course again.")]
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return [Finding(FAIL, "The `packaging` library is missing, so the requirements cannot be checked",
                        f"{_PIP_FIX} (in {root})")]
    findings, checked = [], 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):  # comments, and options such as -e . or -r other.txt
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            findings.append(Finding(WARN, f"requirements.txt line {number} could not be read: {exc}"))
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not meant for this Python or platform
        checked += 1
        problem = _requirement_problem(requirement)
        if problem:
            findings.append(Finding(FAIL, problem, f"{_PIP_FIX} (in {root}), with the course's environment active"))
    if not any(finding.level == FAIL for finding in findings):
        findings.append(Finding(OK, f"All {checked} requirements in requirements.txt are installed"))
    return findings


def _requirement_problem(requirement) -> str | None:
    """Why `requirement` is not met here, or None. Extras are checked one level deep."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    name = canonicalize_name(requirement.name)
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return f"{requirement} is required, but {requirement.name} is not installed"
    try:
        satisfied = requirement.specifier.contains(installed, prereleases=True)
    except ValueError:  # packaging's InvalidVersion: a version it cannot compare
        satisfied = False
    if not satisfied:
        return f"{requirement} is required, but {requirement.name} {installed} is installed"
    for extra in sorted(requirement.extras):
        for text in metadata.requires(name) or []:
            try:
                dependency = Requirement(text)
            except InvalidRequirement:
                continue
            marker = dependency.marker
            if marker is None or "extra" not in str(marker) or not marker.evaluate({"extra": extra}):
                continue
            nested = _requirement_problem(Requirement(str(dependency).split(";", 1)[0]))
            if nested:
                return f"{requirement} is required, but its {extra!r} extra is not met: {nested}"
    return None


def _exercises(root: Path, chapters) -> list[Finding]:
    """Which chapters have an exercise folder (none is fine: `grader start` makes one), and a
    problem for each such folder that lacks its app."""
    started = [chapter for chapter in chapters if (root / "exercises" / chapter.slug).is_dir()]
    if not started:
        first = chapters[0].slug if chapters else "chapter-1"
        return [Finding(INFO, f"No exercise started yet: `grader start {first}` creates exercises/{first}")]
    findings = [Finding(INFO, f"Exercises started: {', '.join(chapter.slug for chapter in started)} (in exercises/)")]
    for chapter in started:
        module = Path(*chapter.app_module.split(".")).with_suffix(".py")
        if not (root / "exercises" / chapter.slug / module).is_file():
            findings.append(Finding(FAIL, f"exercises/{chapter.slug}/{module.as_posix()} is missing",
                                    f"`grader reset {chapter.slug}` puts the starter code back. It saves what is in "
                                    "that folder to a backup first."))
    return findings  # solutions/ is the maintainers' concern: `grader verify` reports it missing


def _sandbox() -> Finding:
    """Whether the learner's app can be graded in a sandbox here (see grader/sandbox.py)."""
    from grader.sandbox import detect

    found = detect()
    if found.isolated:
        return Finding(OK, f"Your app is graded in a sandbox: {found.describe()}")
    fix = ("Install bubblewrap (`sudo apt-get install bubblewrap` on Debian or Ubuntu). Grading works without "
           "it, but your app then runs beside the grader, with your user's rights and network.")
    if shutil.which("bwrap") is not None:  # installed, but this machine or container allows no namespaces
        fix = ("Bubblewrap is installed, but this machine does not let it make a sandbox (containers such as "
               "Binder's usually do not). Grading works without one, with your user's rights and network; for a "
               "grade that must be trusted, grade on a Linux machine that allows user namespaces.")
    if sys.platform != "linux":
        fix = "Grading works without one. For a grade that must be trusted, run the grader on Linux."
    return Finding(WARN, f"Your app is graded without a sandbox ({found.detail})", fix)


def diagnose(root: Path | None = None) -> list[Finding]:
    """Every finding about this environment and the course's clone at `root` (default: this one)."""
    findings = [_python(), _virtual_env()]
    try:
        from grader import catalogue
    except ImportError as exc:  # tomllib is missing before Python 3.11
        findings.append(Finding(FAIL, f"The grader cannot be imported here: {exc}",
                                "Use Python 3.11 or newer (see above)."))
        return findings
    clone = catalogue.course_root()
    if clone is None:
        findings.append(Finding(FAIL, "The grader is installed outside a clone of the course, so it cannot find "
                                      "the exercises", "Clone the course, then run `pip install -e .` in the clone."))
    else:
        findings.append(Finding(OK, f"The grader runs from the clone at {clone}"))
    root = Path(root) if root is not None else clone
    if root is None:
        return findings
    findings.append(_grader_command(root))
    findings.extend(_requirements(root))
    findings.append(_sandbox())
    findings.extend(_exercises(root, catalogue.all_chapters()))
    return findings


def run_doctor(stream: TextIO | None = None, root: Path | None = None) -> int:
    """Print the findings and a summary; 0 when nothing failed, else 1. `stream` defaults to stdout."""
    stream = stream or sys.stdout
    findings = diagnose(root)
    for finding in findings:
        print(f"{_MARKS.get(finding.level, '?')} {finding.what}", file=stream)
        if finding.fix:
            print(f"    fix: {finding.fix}", file=stream)
    failed = sum(finding.level == FAIL for finding in findings)
    warned = sum(finding.level == WARN for finding in findings)
    print(file=stream)
    if failed:
        print(f"{failed} problem(s) and {warned} warning(s). Fix the problems (✘) above, "
              "then run `grader doctor` again.", file=stream)
    elif warned:
        print(f"Ready to go, with {warned} warning(s) (!) worth a look.", file=stream)
    else:
        print("Everything is in order: you are ready to go.", file=stream)
    stream.flush()
    return 1 if failed else 0


if __name__ == "__main__":  # `python -m grader.doctor` works even where `grader` itself cannot start
    sys.exit(run_doctor())

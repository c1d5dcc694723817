"""Time `grader batch` on 100 submissions of Chapter 1, and check every verdict.

    python benchmarks/batch.py [--submissions 100] [--workers N]

The room is realistic: every mutant of Chapter 1 (a plausible wrong solution, from
grader/suites/chapter-1/mutants.toml), and the rest copies of the solution and of the starter,
half each. Solutions must pass every check; the starter and each mutant must fail, each mutant
on every check that claims to catch it. Target: 100 submissions in under 3 minutes on 2 cores.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader.catalogue import find_chapter, solution_dir
from grader.verify import apply_mutant
from grader.workspace import materialize

TARGET = 180.0


def machine_cpu_seconds() -> float | None:
    """CPU-seconds the whole machine has spent busy (Linux: /proc/stat), or None elsewhere.
    Graded apps run in sandboxes that a parent's rusage cannot see, so the machine's own count
    is the honest one; run the benchmark on an otherwise quiet machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")  # not steal: another guest's


def make_room(room: Path, submissions: int) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The submissions' folders in `room`; for each, what it should get: ("pass", ()) or
    ("fail", checks that must fail)."""
    chapter = find_chapter("chapter-1")
    solution = solution_dir(chapter)
    expected: dict[str, tuple[str, tuple[str, ...]]] = {}
    for mutant in chapter.mutants[:submissions]:
        apply_mutant(solution, mutant, room)
        expected[mutant.name] = ("fail", mutant.caught_by)
    rest = submissions - len(expected)
    for number in range(1, rest // 2 + 1):
        shutil.copytree(solution, room / f"solution-{number:02}", ignore=shutil.ignore_patterns("__pycache__"))
        expected[f"solution-{number:02}"] = ("pass", ())
    for number in range(1, rest - rest // 2 + 1):
        materialize(chapter, room / f"starter-{number:02}")
        expected[f"starter-{number:02}"] = ("fail", ())
    return expected


def judge(reports: Path, expected: dict[str, tuple[str, tuple[str, ...]]]) -> tuple[dict[str, int], list[str]]:
    """The verdicts the reports give (passed, failed, not graded), and the submissions whose
    report is not what they should get (an empty list: every verdict right)."""
    counts = {"passed": 0, "failed": 0, "not graded": 0}
    wrong = []
    for name, (verdict, caught_by) in expected.items():
        path = reports / f"{name}.chapter-1.json"
        entry = json.loads(path.read_text())["chapters"]["chapter-1"] if path.exists() else None
        if entry is None or entry["result"] is None:
            counts["not graded"] += 1
            wrong.append(f"{name}: not graded: {entry['problem'] if entry else 'no report'}")
            continue
        status = {check["name"]: check["status"] for check in entry["result"]["checks"]}
        counts["passed" if set(status.values()) == {"passed"} else "failed"] += 1
        if verdict == "pass" and set(status.values()) != {"passed"}:
            wrong.append(f"{name}: should pass every check, got {entry['result']['score']}")
        if verdict == "fail" and set(status.values()) == {"passed"}:
            wrong.append(f"{name}: should fail, passed every check")
        wrong += [f"{name}: not caught by {check}" for check in caught_by if status.get(check) == "passed"]
    return counts, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--workers", type=int, help="passed on to grader batch (default: its own)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-benchmark-") as scratch:
        room, reports = Path(scratch) / "room", Path(scratch) / "reports"
        room.mkdir()
        expected = make_room(room, options.submissions)
        kinds = {kind: sum(name.startswith(kind) for name in expected) for kind in ("solution", "starter")}
        kinds["mutant"] = len(expected) - sum(kinds.values())
        command = [sys.executable, "-m", "grader", "batch", "chapter-1", str(room), "--out", str(reports)]
        command += ["--workers", str(options.workers)] if options.workers else []
        started, busy = time.perf_counter(), machine_cpu_seconds()
        finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        cpu = machine_cpu_seconds() - busy if busy is not None else None
        if finished.returncode != 0:
            print(finished.stdout[-3000:], finished.stderr[-3000:])
            raise SystemExit(f"grader batch exited with {finished.returncode}")
        counts, wrong = judge(reports, expected)
        print(finished.stdout.strip().splitlines()[-2])
    print(f"submissions: {len(expected)} ({kinds['solution']} solutions, {kinds['starter']} starters, "
          f"{kinds['mutant']} mutants), {os.cpu_count()} CPUs, workers: {options.workers or 'default'}")
    print(f"wall time: {wall:.1f} s, {len(expected) / wall * 60:.1f} submissions per minute")
    if cpu is not None:
        print(f"CPU time used on this machine meanwhile: {cpu:.0f} s, {cpu / len(expected):.2f} s per submission "
              f"({cpu / wall / (os.cpu_count() or 1):.0%} of the {os.cpu_count()} CPUs)")
    print(f"verdicts: {counts['passed']} passed every check, {counts['failed']} failed, "
          f"{counts['not graded']} not graded; expected {kinds['solution']} to pass and the rest to fail: "
          f"{'every verdict as expected' if not wrong else f'{len(wrong)} wrong'}")
    for line in wrong:
        print(f"  WRONG {line}")
    projected = wall * 100 / len(expected)
    print(f"{'within' if projected <= TARGET else 'OVER'} the target of {TARGET:.0f} s for 100 submissions"
          + (f" (projected: {projected:.0f} s)." if len(expected) != 100 else "."))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

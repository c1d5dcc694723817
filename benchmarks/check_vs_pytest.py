"""Time `grader check` against bare pytest on the same hidden checks, side by side.

    python benchmarks/check_vs_pytest.py [--runs 7] [--chapter chapter-1]

All are timed as whole commands (process start to exit), alternating, on the chapter's
solution (every check passes) and its starter (every check fails). Bare pytest imports the
learner's app into its own process and drives it with an in-process TestClient (the suite's
fallback when no grader runs it): the fastest way the same checks can run, and the way the
grader worked before the app moved out of its process. It is timed three ways: as installed
(it loads every plugin in the environment, nbval's Jupyter stack included); with plugin
autoloading off; and with exactly the runner's pytest arguments. The ratio is taken against
the fastest of the three. `grader check` runs the app as a real uvicorn server, sandboxed,
with a fresh app process per check. The grader's target is at most 1.3 times bare pytest.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from grader.catalogue import find_chapter  # noqa: E402
from grader.runner import pytest_args  # noqa: E402

TARGET = 1.3


def timed(args: list[str], cwd: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chapter", default="chapter-1")
    options = parser.parse_args()
    suite = ROOT / "grader" / "suites" / options.chapter
    print(f"{options.chapter}, median of {options.runs} runs each, {os.cpu_count()} CPUs\n")
    print(f"{'folder':<24}{'pytest':>10}{'pytest, no autoload':>22}{'pytest, runner args':>23}"
          f"{'grader check':>15}{'ratio':>8}")
    worst = 0.0
    for kind in ("solutions", "exercises"):
        folder = ROOT / kind / options.chapter
        env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}", "PYTHONDONTWRITEBYTECODE": "1",
               "GRADER_LEARNER_DIR": str(folder)}
        bare = [sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(suite),
                "--confcutdir", str(suite), "--import-mode=importlib", str(suite / "test_checks.py")]
        graded = [sys.executable, "-m", "grader", "check", options.chapter, "--path", str(folder)]
        lean = {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        # The runner's own pytest arguments (its plugins switched off, its ini file), run bare.
        same = [sys.executable, "-B", "-m", "pytest", *pytest_args(
            suite, [check.test_name for check in find_chapter(options.chapter).checks])]
        pytest_times, lean_times, same_times, grader_times = [], [], [], []
        with tempfile.TemporaryDirectory() as scratch:
            timed(bare, scratch, env)  # warm the file cache once for all
            for _ in range(options.runs):
                pytest_times.append(timed(bare, scratch, env))
                lean_times.append(timed(bare, scratch, lean))
                same_times.append(timed(same, scratch, lean))
                grader_times.append(timed(graded, scratch, {**os.environ, "PYTHONPATH": str(ROOT)}))
        medians = [statistics.median(times) for times in (pytest_times, lean_times, same_times, grader_times)]
        ratio = medians[3] / min(medians[:3])
        worst = max(worst, ratio)
        print(f"{kind + '/' + options.chapter:<24}{medians[0]:>8.2f} s{medians[1]:>20.2f} s{medians[2]:>21.2f} s"
              f"{medians[3]:>13.2f} s{ratio:>7.2f}×")
    verdict = "within" if worst <= TARGET else "OVER"
    print(f"\nWorst ratio {worst:.2f}× — {verdict} the target of {TARGET}×.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

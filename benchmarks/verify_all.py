"""Time `grader verify` over every chapter: each solution, each starter, each mutant.

    python benchmarks/verify_all.py [--runs 3]

Target: at most 3 minutes on a 2-core machine.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

TARGET = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    times = []
    for _ in range(options.runs):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "grader", "verify"], capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            print(result.stdout[-3000:])
            raise SystemExit("grader verify found problems; the timing would mean nothing")
    runs = [line for line in result.stdout.splitlines() if line.startswith("[")]
    median = statistics.median(times)
    print(f"grader verify: {len(runs)} grading runs, {os.cpu_count()} CPUs, "
          f"median of {options.runs}: {median:.1f} s (all: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"{'within' if median <= TARGET else 'OVER'} the target of {TARGET:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How soon `grader watch` answers after a save, from its warm app host.

    python benchmarks/watch_latency.py [--saves 9]

Starts `grader watch chapter-1` on a copy of the solution, then saves `tracker/main.py` again
and again (a changed comment each time, `--pause` seconds after the last result, as a learner
edits) and times, from each save: the first check's result
line (the re-check latency; target at most 0.3 s) and the score line (the whole re-check).
For comparison it also times a cold `grader check` of the same folder, and reports the checks'
own running time as pytest measured it, so the overhead of a run can be read off.
"""

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=9)
    # After each run, watch warms a fresh app host for the next one (about 1 s of imports on
    # this machine); a save that comes sooner waits for it. Try --pause 0.3 to see that cost.
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between a result and the next save")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "attempt"
        shutil.copytree(ROOT / "solutions" / "chapter-1", folder, ignore=shutil.ignore_patterns("__pycache__"))
        env = {**os.environ, "GRADER_STATE_DIR": str(Path(scratch) / "state")}
        process = subprocess.Popen([sys.executable, "-m", "grader", "watch", "1", "--path", str(folder)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        output = bytearray()

        def wait_for(text: bytes, start: int) -> tuple[float, int]:
            while (found := output.find(text, start)) < 0:
                if not select.select([process.stdout], [], [], 60)[0]:
                    raise SystemExit(f"no {text!r} within 60 s:\n{output.decode()}")
                output.extend(os.read(process.stdout.fileno(), 65536))
            return time.perf_counter(), found + len(text)

        try:
            _, cursor = wait_for(b"Watching", 0)
            main_py = folder / "tracker" / "main.py"
            source = main_py.read_text()
            first, whole = [], []
            for number in range(options.saves):
                time.sleep(options.pause)
                saved = time.perf_counter()
                main_py.write_text(source + f"\n# save {number}\n")
                _, cursor = wait_for(b"changed at", cursor)
                shown, cursor = wait_for(b" \xe2\x9c\x94 ", cursor)  # the first check's line
                scored, cursor = wait_for(b"Score: ", cursor)
                first.append(shown - saved)
                whole.append(scored - saved)
        finally:
            process.terminate()
            process.wait()
        cold = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "grader", "check", "1", "--path", str(folder), "--json",
                            str(Path(scratch) / "r.json")], env=env, stdout=subprocess.DEVNULL, check=False)
            cold.append(time.perf_counter() - started)
        own = sum(check["duration"] for check in json.loads((Path(scratch) / "r.json").read_text())["checks"])
    latency = statistics.median(first)
    print(f"grader watch on chapter-1, {options.saves} saves {options.pause:g} s apart, {os.cpu_count()} CPUs "
          "(medians)\n")
    print(f"  save → first check's result (re-check latency): {latency:.3f} s")
    print(f"  save → score line (whole re-check):              {statistics.median(whole):.3f} s")
    print(f"  the checks' own running time (pytest):           {own:.3f} s")
    print(f"  a cold `grader check` of the same folder:        {statistics.median(cold):.3f} s")
    verdict = "within" if latency <= TARGET else "OVER"
    print(f"\nRe-check latency {latency:.3f} s — {verdict} the target of {TARGET} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

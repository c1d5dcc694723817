"""Tamper evidence: a hash manifest of everything that decides a grade.

`grader/manifest.json` lists a SHA-256 for each file of the hidden suites, the pristine
starters and the grader's own modules. Every `grader check` verifies the suite it is about to
run against it, and every result records the fingerprint (a hash of the manifest itself), so
a facilitator can tell at a glance whether two results came from the same, published checks.

After changing a check, a hint, a mutant or the grader, maintainers run
`python -m grader.manifest --update`; a test fails while the manifest is stale.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parent
MANIFEST = HOME / "manifest.json"
COVERED = ("suites", "starters")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files() -> list[Path]:
    files = [path for path in HOME.glob("*.py")] + [HOME / "checks.ini"]
    for folder in COVERED:
        files += [path for path in (HOME / folder).rglob("*") if path.is_file()]
    return sorted(path for path in files if "__pycache__" not in path.parts and path.suffix != ".pyc")


def build() -> dict[str, str]:
    return {path.relative_to(HOME).as_posix(): _sha256(path) for path in _files()}


def load() -> dict[str, str]:
    try:
        return json.loads(MANIFEST.read_text())["files"]
    except (OSError, ValueError, KeyError):
        return {}


def fingerprint(prefix: str = "", files: dict[str, str] | None = None) -> str:
    """A short hash of the grader's files as they are on disk (checks, starters, modules),
    or of those under `prefix` only (`suites/chapter-1/`: one chapter's hidden suite).
    `files` reuses a `build()` already made, so the files are read once.

    Equal fingerprints mean identical checks and grader; a clone whose grader was edited
    has a fingerprint other than the published one (`python -m grader.manifest` prints it).
    """
    chosen = {name: digest for name, digest in (files or build()).items() if name.startswith(prefix)}
    listing = json.dumps(chosen, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(listing).hexdigest()[:16]


def differences(folder: Path, prefix: str) -> list[str]:
    """Files under `folder` that differ from the manifest entries starting with `prefix`.

    `folder` may be a copy (the runner grades from a private copy of the suite); it is
    compared file by file with the manifest's entries for `prefix`.
    """
    expected = {name[len(prefix):]: digest for name, digest in load().items() if name.startswith(prefix)}
    actual = {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    if not expected:
        return [f"the manifest has no entry for {prefix}"]
    changed = sorted(name for name in expected.keys() & actual.keys() if expected[name] != actual[name])
    missing = sorted(expected.keys() - actual.keys())
    added = sorted(actual.keys() - expected.keys())
    return [f"changed: {name}" for name in changed] + [f"missing: {name}" for name in missing] + [
        f"added: {name}" for name in added
    ]


def stale() -> list[str]:
    current, recorded = build(), load()
    return sorted(name for name in current.keys() | recorded.keys() if current.get(name) != recorded.get(name))


def main(argv: list[str]) -> int:
    if argv == ["--update"]:
        MANIFEST.write_text(json.dumps({"version": 1, "files": build()}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {MANIFEST} ({len(load())} files, fingerprint {fingerprint()})")
        return 0
    problems = stale()
    for name in problems:
        print(f"out of date: {name}")
    print("manifest is current" if not problems else "run: python -m grader.manifest --update")
    print(f"fingerprint {fingerprint()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The course's chapters, their checks and mutants, read from each suite's TOML files.

Order, titles and hints live in `grader/suites/chapter-N/chapter.toml`, not in code, so a
chapter's author edits one file to add a check or reword a hint.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

SUITES = Path(__file__).resolve().parent / "suites"


class UsageError(Exception):
    """The command cannot run as asked (unknown chapter, missing folder); exit status 2."""


#: Where the book is published; `read` links of the hints point into it.
BOOK_URL = "https://fastapi-in-production.github.io/course"


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    hint: str  # rung 2 of the ladder: the API to reach for
    explanation: str  # rung 3: the full account
    lesson: str = ""  # rung 1: what is wrong, in terms of behaviour
    read: tuple[str, str, str] | None = None  # the book section that teaches it: page, anchor, title
    inherited: bool = False  # an earlier chapter's check, run again here (see `inherit` in chapter.toml)
    seconds: float | None = None  # its own time limit, when it must wait (default: Limits.check)

    @property
    def test_name(self) -> str:
        return "test_" + self.name.replace("-", "_")

    @property
    def reading(self) -> str:
        """Where to read up: the section's title, the page in the clone, and its address online."""
        if not self.read:
            return ""
        page, anchor, title = self.read
        built = page.rsplit(".", 1)[0] + ".html"
        return f"“{title}” in {page} ({BOOK_URL}/{built}#{anchor})"


@dataclass(frozen=True)
class Edit:
    """Replace `find` (which must occur exactly once) with `replace` in `file`; or, with
    `delete = true`, remove the file (a forgotten `__init__.py`, say)."""

    file: str
    find: str = ""
    replace: str = ""
    delete: bool = False


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    caught_by: tuple[str, ...]
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    package: str
    app_module: str
    suite_dir: Path
    checks: tuple[Check, ...] = field(repr=False)
    #: Names in app_module the checks rely on: "app", and optionally "engine" and "base".
    names: dict[str, str] = field(default_factory=lambda: {"app": "app"}, repr=False, compare=False)
    #: The exercise's statement, a page of the book (copied into the exercise as README.md), and
    #: the folders its starting code is copied from, in order: all paths from the course's root.
    statement: str = field(default="", repr=False, compare=False)
    starter: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: The chapter whose checks run here first, unchanged (`inherit = "chapter-N"`), if any.
    inherit: str = field(default="", repr=False, compare=False)
    #: Outside services the checks run for every app of this chapter, by name: the TCP port on
    #: 127.0.0.1 where the app reaches each (`services = { webhook = 9000 }` in chapter.toml).
    services: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    #: Environment variables of the app's host, set before the learner's module is imported, so
    #: every app of the run reads its settings from them (`environment = { ... }` in chapter.toml).
    environment: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def slug(self) -> str:
        return f"chapter-{self.number}"

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise UsageError(f"{self.slug} has no check named {name!r}; `grader list` shows them.")

    @cached_property
    def mutants(self) -> tuple[Mutant, ...]:
        path = self.suite_dir / "mutants.toml"
        if not path.exists():
            return ()
        data = tomllib.loads(path.read_text())
        return tuple(
            Mutant(
                name=item["name"],
                description=item["description"],
                caught_by=tuple(item["caught_by"]),
                edits=tuple(Edit(**edit) for edit in item["edit"]),
            )
            for item in data.get("mutant", [])
        )


def _toml(path: Path) -> dict:
    """A suite's TOML file, parsed once per process for as long as the file is unchanged: one
    `grader check` asks for its chapter (and the chapters it inherits) many times. Read-only."""
    stat = path.stat()
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size)


@cache
def _parsed(path: str, mtime_ns: int, size: int) -> dict:
    return tomllib.loads(Path(path).read_text())


def _check_entries(suite_dir: Path) -> list[dict]:
    """A suite's [[check]] tables, with `like = "chapter-N"` filled in from that chapter's
    check of the same name (the keys a check gives itself win)."""
    entries = []
    for item in _toml(suite_dir / "chapter.toml")["check"]:
        if "like" in item:
            model = {entry["name"]: entry for entry in _check_entries(suite_dir.parent / item["like"])}
            if item["name"] not in model:
                raise ValueError(f"{suite_dir.name}: check {item['name']} is like {item['like']}, which has no such check")
            item = {**model[item["name"]], **{key: value for key, value in item.items() if key != "like"}}
        entries.append(item)
    return entries


def _check(item: dict, inherited: bool = False) -> Check:
    return Check(name=item["name"], title=item["title"], hint=item["hint"].strip(),
                 explanation=item.get("explanation", "").strip(), lesson=item.get("lesson", "").strip(),
                 read=tuple(item["read"]) if "read" in item else None,
                 inherited=inherited or item.get("inherited", False), seconds=item.get("seconds"))


def load_chapter(suite_dir: Path) -> Chapter:
    data = _toml(suite_dir / "chapter.toml")
    number = int(suite_dir.name.removeprefix("chapter-"))
    # `inherit = "chapter-N"`: that chapter's checks run here first, unchanged (a chapter that
    # restructures code keeps every earlier rule); they pass on this chapter's starter.
    inherited = load_chapter(suite_dir.parent / data["inherit"]).checks if "inherit" in data else ()
    checks = tuple(_check(check.__dict__, inherited=True) for check in inherited) + tuple(
        _check(item) for item in _check_entries(suite_dir))
    return Chapter(
        number=number,
        title=data["title"],
        package=data["package"],
        app_module=data["app_module"],
        suite_dir=suite_dir,
        checks=checks,
        names=dict(data.get("names", {"app": "app"})),
        statement=data.get("statement", ""),
        starter=tuple(data.get("starter", ())),
        inherit=data.get("inherit", ""),
        services=dict(data.get("services", {})),
        environment={str(key): str(value) for key, value in data.get("environment", {}).items()},
    )


def all_chapters() -> list[Chapter]:
    dirs = [path for path in SUITES.glob("chapter-*") if (path / "chapter.toml").exists()]
    return sorted((load_chapter(path) for path in dirs), key=lambda chapter: chapter.number)


def find_chapter(name: str) -> Chapter:
    """Accept `chapter-4`, `4` or `chapter4`."""
    match = re.fullmatch(r"(?:chapter-?)?(\d+)", name.strip().lower())
    if match and (SUITES / f"chapter-{int(match.group(1))}" / "chapter.toml").exists():
        return load_chapter(SUITES / f"chapter-{int(match.group(1))}")
    known = ", ".join(chapter.slug for chapter in all_chapters()) or "none"
    raise UsageError(f"There is no chapter {name!r}. Chapters with checks: {known}.")


def course_root() -> Path | None:
    """The clone this grader belongs to: the folder holding the book's `_toc.yml` beside `grader/`.
    (`exercises/` is the learner's, untracked apart from its README, so it does not say.)"""
    root = SUITES.parent.parent
    return root if (root / "_toc.yml").is_file() else None


def exercise_dir(chapter: Chapter) -> Path:
    root = course_root()
    if root is None:
        raise UsageError(
            "The grader is installed outside a clone of the course, so it cannot find "
            f"exercises/{chapter.slug}. Pass the folder with --path."
        )
    return root / "exercises" / chapter.slug


def solution_dir(chapter: Chapter) -> Path:
    root = course_root()
    if root is None:
        raise UsageError("`grader verify` needs the course's clone (solutions/).")
    return root / "solutions" / chapter.slug


def learner_folder(chapter: Chapter, path: Path | str | None = None) -> Path:
    """The folder to grade (the chapter's exercise unless `path` is given), or a UsageError
    that says what is wrong with it."""
    folder = (Path(path) if path is not None else exercise_dir(chapter)).expanduser().resolve()
    if path is None and not folder.exists():
        raise UsageError(f"exercises/{chapter.slug} does not exist yet. Create it with `grader start {chapter.slug}`.")
    if not folder.is_dir():
        raise UsageError(f"There is no folder {folder}.")
    main = folder / Path(*chapter.app_module.split(".")).with_suffix(".py")
    if not main.is_file() and folder.name == chapter.package and (folder / main.name).is_file():
        raise UsageError(f"{folder} is the {chapter.package!r} package itself; give its parent: --path {folder.parent}")
    if not main.is_file():
        restore = f" `grader reset {chapter.slug}` restores the starter." if path is None else ""
        raise UsageError(
            f"{main} is missing. The folder must hold the {chapter.package!r} package of this chapter's exercise."
            + restore
        )
    return folder

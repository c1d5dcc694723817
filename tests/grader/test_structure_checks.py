"""Chapter 3's checks of the code's shape: the statement, the contracts and the checks agree,
and what no mutant can show (a file missing from the tree; names that live in other modules
than the app's) is graded as stated."""

import importlib.util
import re
import sys
import tomllib
import types

import pytest

from grader.apphost import ImportFailed, find_names
from grader.catalogue import course_root, find_chapter, solution_dir
from grader.runner import Limits, Runner

ROOT = course_root()
CHAPTER = find_chapter("chapter-3")
SUITE = CHAPTER.suite_dir
STATEMENT = (ROOT / CHAPTER.statement).read_text()


def suite_module():
    """The suite's test_checks.py, loaded by path after its conftest.py, which loads the earlier
    suites it takes its inherited checks from."""
    for name, file in (("chapter_3_conftest", "conftest.py"), ("chapter_3_checks", "test_checks.py")):
        loader = importlib.util.spec_from_file_location(name, SUITE / file)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    return module


def test_the_statement_shows_the_contracts_the_checks_use():
    blocks = re.findall(r"```toml\n(.*?)```", STATEMENT, re.S)
    shown = [tomllib.loads(block) for block in blocks if "[tool.importlinter]" in block]
    used = tomllib.loads((SUITE / "contracts.toml").read_text())
    assert shown == [used], "book/chapter-3/exercise.md must show grader/suites/chapter-3/contracts.toml as it is"
    solution = tomllib.loads((solution_dir(CHAPTER) / "pyproject.toml").read_text())
    assert solution["tool"]["importlinter"] == used["tool"]["importlinter"]


def test_the_statement_table_is_the_checks_table():
    rows = re.findall(r"^\| `(GET|POST|PATCH|DELETE) ([^`]+)` \| `(\w+)` \| `(\w+)` \| `([\w-]+)` \|$", STATEMENT, re.M)
    assert [(method, path, tag, function) for method, path, tag, function, _ in rows] == suite_module().ROUTES
    assert all(operation_id == f"{tag}-{function}" for _, _, tag, function, operation_id in rows)


def test_the_tree_in_the_statement_is_the_checks_tree():
    tree = STATEMENT[STATEMENT.index("```text\npyproject.toml"):]
    tree = tree[:tree.index("```\n", 10)]
    for path in suite_module().LAYOUT:
        assert path.split("/")[-1] in tree, f"{path} is checked, and not in the statement's tree"


@pytest.fixture
def grade_chapter_3(scratch_root):
    def run(folder, *names):
        checks = [CHAPTER.check(name) for name in names]
        return {result.check.name: result for result in Runner(CHAPTER, folder, Limits()).run(only=checks).results}

    return run


def test_chapter_2s_single_module_is_told_where_the_names_now_live(grade_chapter_3):
    result = Runner(CHAPTER, solution_dir(find_chapter("chapter-2")), Limits()).run(only=[CHAPTER.check("package-layout")])
    assert "tracker.shared.database" in result.load_problem and "no such module" in result.load_problem


def test_a_qualified_name_is_found_in_its_module_and_missing_ones_are_named(monkeypatch):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        pass

    database = types.ModuleType("learner_pkg.database")
    database.engine = create_engine("sqlite://")
    package, main = types.ModuleType("learner_pkg"), types.ModuleType("learner_pkg.main")
    package.__path__ = []
    main.app, main.Base = (lambda scope, receive, send: None), Base
    for module in (package, database, main):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    names = {"app": "app", "engine": "learner_pkg.database:engine", "base": "Base"}
    found = find_names(main, names, "learner_pkg/main.py")
    assert found["engine"] is database.engine and found["base"] is Base
    with pytest.raises(ValueError, match=r"has no `engine_` \(the database engine\)\. Define it there"):
        find_names(main, {**names, "engine": "learner_pkg.database:engine_"}, "learner_pkg/main.py")
    with pytest.raises(ValueError, match=r"as `engine` in the module learner_pkg\.elsewhere .* no such module"):
        find_names(main, {**names, "engine": "learner_pkg.elsewhere:engine"}, "learner_pkg/main.py")


def test_a_named_module_that_raises_is_reported_as_that_modules_import(tmp_path, monkeypatch):
    (tmp_path / "learner_raises").mkdir()
    (tmp_path / "learner_raises" / "__init__.py").write_text("")
    (tmp_path / "learner_raises" / "database.py").write_text("raise RuntimeError('no database today')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    main = types.ModuleType("learner_raises.main")
    with pytest.raises(ImportFailed) as failed:
        find_names(main, {"engine": "learner_raises.database:engine"}, "learner_raises/main.py")
    assert failed.value.module == "learner_raises.database"
    assert isinstance(failed.value.error, RuntimeError)

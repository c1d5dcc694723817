"""Fixtures for Chapter 3's checks: a fresh app process, on a freshly created database.

Chapter 3 changes the code's shape and none of its behaviour, so Chapter 2's checks run here
too (`inherit` in chapter.toml): this file loads Chapter 2's suite as Chapter 2's conftest
does, by path, and test_checks.py takes its checks from it. Chapter 3's own checks mostly need
no app process: they read the learner's files as data, or run a small script beside the app
(`grader.harness.run_in_app`).
"""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from grader.harness import app_for_check, app_value

HERE = Path(__file__).parent
SUITES = HERE.parent


def _load(name: str, path: Path):
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    loader.loader.exec_module(module)
    return module


_load("spec_chapter_1", SUITES / "chapter-1" / "spec.py")
_load("spec", SUITES / "chapter-2" / "spec.py")
_load("checks_chapter_1", SUITES / "chapter-1" / "test_checks.py")
_load("checks_chapter_2", SUITES / "chapter-2" / "test_checks.py")


@pytest.fixture
def client():
    with app_for_check(HERE) as test_client:
        yield test_client


@pytest.fixture
def secret_key(client):
    """The app's SECRET_KEY, where `names` in chapter.toml says (see Chapter 2's conftest)."""
    chapter = tomllib.loads((HERE / "chapter.toml").read_text())
    return app_value(chapter["names"]["secret_key"], chapter["app_module"])

"""Fixtures for Chapter 2's checks: a fresh app process, on a freshly created database.

Chapter 2 keeps Chapter 1's contract, so its suite reads Chapter 1's `spec.py` and reuses the
helpers of Chapter 1's checks (boundary probes, expectations), all loaded by path: the suites'
folders never join sys.path, so nothing of them can reach the app's view.
"""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from grader.harness import app_for_check, app_value

HERE = Path(__file__).parent
CHAPTER_1 = HERE.parent / "chapter-1"


def _load(name: str, path: Path):
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    loader.loader.exec_module(module)
    return module


_load("spec_chapter_1", CHAPTER_1 / "spec.py")
contract = _load("spec", HERE / "spec.py")
# Chapter 1's check helpers, which import `spec`: this chapter's contract, a superset of its own.
_load("checks_chapter_1", CHAPTER_1 / "test_checks.py")


@pytest.fixture
def client():
    with app_for_check(HERE) as test_client:
        yield test_client


@pytest.fixture
def secret_key(client):
    """The app's SECRET_KEY (where chapter.toml's `names` says), read beside the app, to forge
    tokens with. It is the learner's word: the checks that use it first show that a token they
    sign with it is accepted, so a wrong answer cannot make a check pass."""
    chapter = tomllib.loads((HERE / "chapter.toml").read_text())
    return app_value(chapter["names"]["secret_key"], chapter["app_module"])

"""Fixtures for Chapter 5's checks: Chapter 4's, with the settings given by the environment.

Every app of the run imports the learner's package with `environment` of chapter.toml set
(TRACKER_ENVIRONMENT=test and a signing key of the checks' own), so Chapter 2's token checks,
which run again here, sign with a key that reached the app only through its settings.
"""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from grader import harness
from grader.harness import app_for_check

HERE = Path(__file__).parent
SUITES = HERE.parent
CHAPTER = tomllib.loads((HERE / "chapter.toml").read_text())


def _load(name: str, path: Path):
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    loader.loader.exec_module(module)
    return module


# Chapter 4's conftest loads Chapters 1 to 3's suites and widens their route tables; its
# fixtures (the outside services) are taken from it below.
chapter_4 = _load("conftest_chapter_4", SUITES / "chapter-4" / "conftest.py")
_load("checks_chapter_4", SUITES / "chapter-4" / "test_checks.py")
world = chapter_4.world
outside = chapter_4.outside


@pytest.fixture(scope="session")
def other_mail_server():
    """A second SMTP server, on the port `smtp-alt` of chapter.toml, for TRACKER_SMTP_PORT."""
    supervisor = harness._supervisor
    if supervisor is None:
        pytest.skip("Chapter 5's checks need `grader check` (its app host relays the outside services)")
    server = chapter_4.services.MailService(supervisor.service_socket("smtp-alt"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def other_mail(other_mail_server):
    other_mail_server.reset()
    return other_mail_server


@pytest.fixture
def client(outside):
    with app_for_check(HERE) as test_client:
        yield test_client


@pytest.fixture
def secret_key(client):
    """The signing key the checks gave every app through TRACKER_SECRET_KEY."""
    return CHAPTER["environment"]["TRACKER_SECRET_KEY"]

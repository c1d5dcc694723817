"""Fixtures for Chapter 4's checks: a fresh app process per check, and the outside world it talks to.

Every rule of Chapters 1 to 3 still holds, so Chapter 3's checks run first (`inherit` in
chapter.toml), and with them Chapter 2's: this file loads those suites by path, as Chapter 3's
conftest does, and adds this chapter's new routes to their tables, so that their rules
(a token, membership, one tag and an operation id per route) are checked on the new routes too.

The outside world is real: a webhook service and an SMTP server (aiosmtpd), both run by this
process for the whole run on sockets the app reaches at 127.0.0.1:9000 and 127.0.0.1:8025
(`services` in chapter.toml). Each check starts with both in their normal state and empty.
"""

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from grader import harness
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
contract = _load("spec", SUITES / "chapter-2" / "spec.py")
_load("checks_chapter_1", SUITES / "chapter-1" / "test_checks.py")
checks_2 = _load("checks_chapter_2", SUITES / "chapter-2" / "test_checks.py")
checks_3 = _load("checks_chapter_3", SUITES / "chapter-3" / "test_checks.py")
services = _load("services_chapter_4", HERE / "services.py")

# The new routes in the earlier chapters' tables. Push takes no body, so Chapter 2's token and
# membership checks send it as they send every other route; the attachment routes take a file
# or return one, and this chapter's own checks cover their token and membership.
PUSH = ("POST", "/tasks/{task}/push", None)
contract.PROTECTED = checks_2.PROTECTED = contract.PROTECTED + (PUSH,)
contract.MEMBERS_ONLY = checks_2.MEMBERS_ONLY = contract.MEMBERS_ONLY + (PUSH,)
checks_2.DOCUMENTED = checks_2.DOCUMENTED + [("post", "/tasks/{}/push"), ("post", "/tasks/{}/attachments")]
checks_3.ROUTES = checks_3.ROUTES + [
    ("POST", "/tasks/{task_id}/push", "tasks", "push_task"),
    ("POST", "/tasks/{task_id}/attachments", "tasks", "upload_attachment"),
    ("GET", "/tasks/{task_id}/attachments/{attachment_id}", "tasks", "download_attachment"),
]


@pytest.fixture(scope="session")
def world():
    """The webhook service and the SMTP server, for the whole run."""
    supervisor = harness._supervisor
    if supervisor is None:
        pytest.skip("Chapter 4's checks need `grader check` (its app host relays the outside services)")
    outside = services.start_services(supervisor.service_socket)
    yield outside
    outside.webhook.stop()
    outside.mail.stop()


@pytest.fixture(autouse=True)
def outside(world):
    """Both services in their normal state, with nothing received yet, for every check."""
    world.reset()
    yield world
    world.webhook.released.set()


@pytest.fixture
def client(outside):
    with app_for_check(HERE) as test_client:
        yield test_client


@pytest.fixture
def secret_key(client):
    """The app's SECRET_KEY (see Chapter 2's conftest)."""
    chapter = tomllib.loads((HERE / "chapter.toml").read_text())
    return app_value(chapter["names"]["secret_key"], chapter["app_module"])

"""Fixtures for Chapter 1's checks: a fresh app process, on a freshly created database."""

from pathlib import Path

import pytest

from grader.harness import app_for_check


@pytest.fixture
def client():
    with app_for_check(Path(__file__).parent) as test_client:
        yield test_client

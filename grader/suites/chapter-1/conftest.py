"""Fixtures for Chapter 1's checks: a fresh app process, on a freshly created database."""

import sys
from pathlib import Path

import pytest

from grader.harness import app_for_check

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # test_checks.py reads the contract from spec.py beside it
    sys.path.insert(0, str(HERE))
sys.modules.pop("spec", None)  # another chapter's spec, from an earlier run in this process


@pytest.fixture
def client():
    with app_for_check(HERE) as test_client:
        yield test_client

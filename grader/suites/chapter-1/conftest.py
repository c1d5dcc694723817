"""Fixtures for Chapter 1's checks: a fresh app process, on a freshly created database."""

import importlib.util
import sys
from pathlib import Path

import pytest

from grader.harness import app_for_check

HERE = Path(__file__).parent

# test_checks.py reads the contract from spec.py beside it. Loaded by path, as `spec`, so that
# the suite's folder never joins sys.path (nothing of the suite may reach the app's view).
_loader = importlib.util.spec_from_file_location("spec", HERE / "spec.py")
contract = importlib.util.module_from_spec(_loader)
sys.modules["spec"] = contract
_loader.loader.exec_module(contract)


@pytest.fixture
def client():
    with app_for_check(HERE) as test_client:
        yield test_client

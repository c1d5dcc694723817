"""Fixtures for Chapter 1's checks: the learner's app, on a freshly created database."""

import importlib

import pytest

from grader.harness import CheckClient, require


@pytest.fixture
def client():
    main = importlib.import_module("tracker.main")
    app = require(main, "app", "the FastAPI application")
    engine = require(main, "engine", "the database engine, reset before every check")
    base = require(main, "Base", "the declarative base whose tables every check recreates")
    engine.dispose()
    base.metadata.drop_all(engine)
    base.metadata.create_all(engine)
    with CheckClient(app) as test_client:
        yield test_client
    engine.dispose()

"""The hidden checks under bare pytest: the learner's app imported into the test process.

`grader check` never uses this: it runs the app in a sandboxed process of its own. This is
for authoring checks (`pytest grader/suites/chapter-1` with the exercise on `PYTHONPATH`, or
`GRADER_LEARNER_DIR` naming it) and for `benchmarks/check_vs_pytest.py`, which compares the
grader with this, the fastest way the same checks can run.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient


@contextmanager
def in_process_app(suite_dir: Path) -> Iterator[TestClient]:
    chapter = tomllib.loads((suite_dir / "chapter.toml").read_text())
    if folder := os.environ.get("GRADER_LEARNER_DIR"):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module = importlib.import_module(chapter["app_module"])
    names = chapter["names"]
    engine, base = _named(module, names["engine"]), _named(module, names["base"])
    engine.dispose()
    base.metadata.drop_all(engine)
    base.metadata.create_all(engine)
    with TestClient(_named(module, names["app"]), base_url="http://tracker") as client:
        database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        client.database = Path(database).resolve() if database and database != ":memory:" else None
        yield client
    engine.dispose()


def _named(module: object, name: str) -> object:
    """`attribute` of the app's module, or `module:attribute` anywhere (as in chapter.toml)."""
    if ":" in name:
        module_name, name = name.split(":", 1)
        module = importlib.import_module(module_name)
    return getattr(module, name)

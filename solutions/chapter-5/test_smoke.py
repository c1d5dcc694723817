"""A quick, visible smoke test: the app imports, starts and answers.

Run it from this folder with `python -m pytest test_smoke.py`. It passes on the starter
already: it only shows that your code still runs. `grader check` grades the exercise.
"""

import os
import tempfile

from fastapi.testclient import TestClient

# The tracker keeps its SQLite file in the working directory; keep it out of this folder.
os.chdir(tempfile.mkdtemp(prefix="tracker-smoke-"))

from tracker.main import app  # noqa: E402


def test_the_app_starts_and_documents_itself():
    with TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        assert response.json()["paths"], "the app has no routes"

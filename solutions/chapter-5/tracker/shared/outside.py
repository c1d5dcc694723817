"""The app's one HTTP client for outside services, made and closed by the app's lifespan.

One `httpx.AsyncClient` for the whole process keeps connections open between requests (no new
TCP or TLS handshake per call) and bounds how many it opens. Every call through it has a
timeout, so a service that hangs costs us at most `webhook_timeout` seconds, never a worker.
"""

from typing import Annotated

import httpx
from fastapi import Depends, Request

from tracker.config import Settings


def new_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(settings.webhook_timeout))


def get_http_client(request: Request) -> httpx.AsyncClient:
    """The client the lifespan put in app.state (see tracker.main)."""
    return request.app.state.http


HttpClient = Annotated[httpx.AsyncClient, Depends(get_http_client)]

"""The settings of the app that serves the request (create_app keeps them in app.state)."""

from typing import Annotated

from fastapi import Depends, Request

from tracker.config import Settings


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]

"""The tracker's settings: one typed class, read from the environment (and a `.env` file).

Every value can be set from outside without touching the code: `TRACKER_DATABASE_URL`,
`TRACKER_SECRET_KEY`, ... (the field's name in capitals, after the prefix). The environment
wins over `.env` in the working directory, which wins over the defaults below. The defaults
suit a developer's machine; outside development the secret must be given.

A wrong value stops the app at start-up, with a message that names the variable: a
deployment with a typo fails before it serves anyone, not at 3 a.m. on the first request
that needs the value.
"""

from functools import lru_cache
from typing import Literal

from limits import parse
from pydantic import AnyHttpUrl, EmailStr, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "TRACKER_"
# Good enough for a laptop, and refused anywhere else (see `secret_outside_development`).
DEV_SECRET_KEY = "change-me-this-is-not-a-secret-0123456789"
ALGORITHM = "HS256"  # not a setting: the code that signs and checks tokens depends on it


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./tracker.db"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    access_token_minutes: int = Field(30, ge=1, le=1440)
    login_limit: str = "5 per 10 seconds"  # per username
    write_limit: str = "100 per 10 seconds"  # per signed-in user
    webhook_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:9000/hooks/tasks")
    webhook_timeout: float = Field(2.0, gt=0, le=60)  # seconds, for each phase of a call
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(8025, ge=1, le=65535)
    smtp_timeout: float = Field(5.0, gt=0, le=60)
    mail_from: EmailStr = "tracker@example.com"
    max_attachment_bytes: int = Field(1_048_576, ge=1)
    sentry_dsn: SecretStr | None = None  # Chapter 6

    @field_validator("login_limit", "write_limit")
    @classmethod
    def a_rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '100 per 10 seconds'") from None
        return value

    @model_validator(mode="after")
    def secret_outside_development(self) -> "Settings":
        if self.environment != "development":
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET_KEY:
                raise ValueError(f"{PREFIX}SECRET_KEY must be set outside development (it is the development default)")
            if len(secret.encode()) < 32:
                raise ValueError(f"{PREFIX}SECRET_KEY must be at least 32 bytes long outside development")
        return self


class ConfigurationError(RuntimeError):
    """The settings could not be read: the message names every variable at fault."""


def describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in problem["loc"])
        name = f"{PREFIX}{field.upper()}" if field else "settings"
        lines.append(f"  {name}: {problem['msg']}")
    return "Invalid configuration:\n" + "\n".join(lines)


def load_settings(**values: object) -> Settings:
    """Settings from the environment (and `values`, which win), or a ConfigurationError."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigurationError(describe(error)) from None


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests: `get_settings.cache_clear()` after changing the
    environment, or give `create_app` a Settings of their own)."""
    return load_settings()

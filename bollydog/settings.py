"""Process-wide settings from ``BOLLYDOG_*`` environment variables.

Read lazily and cached: importing bollydog reads nothing. The CLI calls :func:`reload_settings`
after it has loaded a ``.env`` file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bollydog.errors import ConfigError


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_", extra="ignore")

    command_expire_time: float = Field(60.0, gt=0, description="Default Command timeout, seconds.")
    event_expire_time: float = Field(60.0, gt=0, description="Default Event timeout, seconds.")
    log_level: str = Field("INFO", description="Level of the CLI's log: DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    log_json: bool = False
    log_file: str | None = None
    handlers: str = Field("", description="Comma-separated handler modules for config-less use.")
    queue_max_size: int = Field(1000, ge=1)
    hub_concurrency: int = Field(100, ge=1)
    retry_backoff: float = Field(0.1, ge=0, description="First retry delay; doubles each retry.")
    retry_backoff_max: float = Field(5.0, ge=0)
    shutdown_grace: float = Field(10.0, ge=0, description="Seconds in-flight work gets to drain.")
    compensation_grace: float = Field(
        3.0, ge=0, description="Seconds a generator handler cut by shutdown gets to compensate."
    )
    wait_retention: float = Field(
        5.0, ge=0, description="Seconds a dispatched Event stays in the buffer a new WaitFor looks back into."
    )
    wait_buffer: int = Field(256, ge=1, description="Events per class the WaitFor buffer keeps at most.")
    durable_lease: float = Field(
        10.0, gt=0, description="Seconds a process holds a durable run without renewing; renewed every third."
    )
    durable_max_takeovers: int = Field(
        10, ge=1, description="Takeovers of a durable run that never finishes before it is parked."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="The CLI's event loop: uvloop when installed (auto), or as named."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LEVELS:
            raise ValueError(f"not a log level; one of {', '.join(_LEVELS)}")
        return level

    @property
    def handler_modules(self) -> list[str]:
        return [m.strip() for m in self.handlers.split(",") if m.strip()]


#: Bumped by :func:`reload_settings`, so that values derived from settings know to refresh.
settings_generation = [0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings; an invalid ``BOLLYDOG_*`` value is a :class:`ConfigError` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"BOLLYDOG_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid environment setting: {problems}") from None


def reload_settings() -> Settings:
    get_settings.cache_clear()
    settings_generation[0] += 1
    return get_settings()

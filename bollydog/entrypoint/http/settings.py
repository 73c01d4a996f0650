"""Options of the HTTP entrypoint: config section first, then ``BOLLYDOG_HTTP_SERVICE_*``.

An option given in the config section (or to the constructor) wins; an option not given there
is read from the environment (``port`` from ``BOLLYDOG_HTTP_SERVICE_PORT`` ...); otherwise the
default applies. Unknown options are a :class:`~bollydog.errors.ConfigError`. How they are read
is every entrypoint's: :mod:`bollydog.entrypoint.kit.settings`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from bollydog.entrypoint.kit.settings import (
    EntrypointSettings, JwtSettings, ListenerSettings, OptionalText, TextList,
)


class RouteOptions(BaseModel):
    """One entry of ``router_mapping``."""

    model_config = ConfigDict(extra="forbid")

    methods: list[str] | None = Field(None, description="HTTP methods; default GET and POST (HEAD only when listed).")
    aliases: list[str] = Field(default_factory=list, description="Extra absolute paths.")
    debounce: float | None = Field(None, gt=0, description="Seconds identical requests share a run.")
    rate_limit: str | None = Field(None, description="'N/s', 'N/m' or 'N/h' per client.")

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        allowed = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
        methods = [m.upper() for m in value]
        bad = [m for m in methods if m not in allowed]
        if bad or not methods:
            raise ValueError(f"methods must be a non-empty subset of {sorted(allowed)}, got {value}")
        return methods

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not alias.startswith("/") or "{" in alias:
                raise ValueError(f"alias '{alias}' must be an absolute path without parameters")
        return value


class HttpSettings(EntrypointSettings, JwtSettings, ListenerSettings):
    """Every option of the ``http`` config section (see docs/http.md); the JWT options are
    the :class:`~bollydog.entrypoint.kit.settings.JwtSettings` every entrypoint shares, the
    head deadline the kit's :class:`~bollydog.entrypoint.kit.settings.ListenerSettings`."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_HTTP_SERVICE_", extra="forbid")
    section: ClassVar[str] = "http"

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    debug: bool = False
    log_level: str = "info"
    access_log: bool = False
    private_key: OptionalText = Field(None, description="PEM text or file: for issue_token.")
    include: TextList = Field(default_factory=lambda: ["*"], description="fnmatch on domain.name")
    exclude: TextList = Field(default_factory=list)
    router_mapping: dict[str, RouteOptions] = Field(default_factory=dict)
    openapi: bool = True
    title: str = "bollydog"
    version: str = "0.1.0"
    outcomes_max: int = Field(1024, ge=1, description="qos=0 outcomes kept for GET /_bollydog/messages.")
    limit_concurrency: int | None = Field(None, ge=1, description="uvicorn: 503 beyond this.")
    max_connections: int = Field(
        1024, ge=1, description="Open TCP connections, idle and slow ones included; one more gets 503."
    )
    shutdown_timeout: float | None = Field(
        None, ge=0, description="uvicorn's own bound on stop; default: the hub's grace + compensation + 1 s."
    )
    retry_after: int = Field(1, ge=0, description="Retry-After seconds on 503.")
    mcp_path: OptionalText = Field(None, description="Also serve MCP (streamable HTTP) here, e.g. /mcp.")
    probes: bool = Field(True, description="Serve /livez, /readyz and /metrics (docs/operations.md).")

"""Options of the HTTP entrypoint: config section first, then ``BOLLYDOG_HTTP_SERVICE_*``.

An option given in the config section (or to the constructor) wins; an option not given there
is read from the environment (``port`` from ``BOLLYDOG_HTTP_SERVICE_PORT`` ...); otherwise the
default applies. Unknown options are a :class:`~bollydog.errors.ConfigError`.
"""

from __future__ import annotations

from typing import Any

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from bollydog.errors import ConfigError


class RouteOptions(BaseModel):
    """One entry of ``router_mapping``."""

    model_config = ConfigDict(extra="forbid")

    methods: list[str] | None = Field(None, description="HTTP methods; default GET and POST.")
    aliases: list[str] = Field(default_factory=list, description="Extra absolute paths.")
    debounce: float | None = Field(None, gt=0, description="Seconds identical requests share a run.")
    rate_limit: str | None = Field(None, description="'N/s', 'N/m' or 'N/h' per client.")

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        allowed = {"GET", "POST", "PUT", "PATCH", "DELETE"}
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


class HttpSettings(BaseSettings):
    """Every option of the ``http`` config section (see docs/http.md)."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_HTTP_SERVICE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    debug: bool = False
    log_level: str = "info"
    access_log: bool = False
    public_key: str | None = Field(None, description="PEM text or file: enables JWT auth.")
    private_key: str | None = Field(None, description="PEM text or file: for issue_token.")
    auth_required: bool = Field(True, description="With a public key: reject requests without a token.")
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = Field(0.0, ge=0)
    include: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"], description="fnmatch on domain.name")
    exclude: Annotated[list[str], NoDecode] = Field(default_factory=list)
    router_mapping: dict[str, RouteOptions] = Field(default_factory=dict)
    openapi: bool = True
    title: str = "bollydog"
    version: str = "0.1.0"
    outcomes_max: int = Field(1024, ge=1, description="qos=0 outcomes kept for GET /_bollydog/messages.")
    limit_concurrency: int | None = Field(None, ge=1, description="uvicorn: 503 beyond this.")
    shutdown_timeout: float | None = Field(
        None, ge=0, description="uvicorn's own bound on stop; default: the hub's grace + compensation + 1 s."
    )
    retry_after: int = Field(1, ge=0, description="Retry-After seconds on 503.")
    mcp_path: str | None = Field(None, description="Also serve MCP (streamable HTTP) here, e.g. /mcp.")

    @field_validator("public_key", "private_key", "jwt_audience", "jwt_issuer", "mcp_path", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("include", "exclude", "jwt_algorithms", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a.upper().startswith("HS") or a.lower() == "none"]
        if bad:
            raise ValueError(f"only asymmetric algorithms (RS256, ES256, ...) are accepted, got {bad}")
        return value

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "HttpSettings":
        try:
            return cls(**options)
        except SettingsError as exc:
            raise ConfigError(f"http: invalid BOLLYDOG_HTTP_SERVICE_* variable: {exc}") from None
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"http: invalid options: {details}") from None

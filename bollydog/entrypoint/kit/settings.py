"""The options every entrypoint parses: one base, one JWT block, one way to read them.

An entrypoint's options are one pydantic-settings model, a subclass of
:class:`EntrypointSettings` (and of :class:`JwtSettings` for the token checks). An option given
in the config section (or to the constructor) wins; an option not given there is read from the
entrypoint's environment prefix (``BOLLYDOG_HTTP_SERVICE_PORT``...); otherwise the default
applies. :meth:`EntrypointSettings.from_options` turns every problem, unknown options included,
into one :class:`~bollydog.errors.ConfigError` naming the section.

From the environment, a list is comma-separated text (``a.*, b.*``) or a JSON list; empty text
means "not set" for optional text options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from bollydog.errors import ConfigError

__all__ = [
    "DEFAULT_ALGORITHMS", "EntrypointSettings", "JwtSettings", "ListenerSettings", "OptionalText", "TextList",
]

#: What tokens are signed with unless ``jwt_algorithms`` says otherwise.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256",)


def _split(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: validation says what is wrong
    return [v.strip() for v in text.split(",") if v.strip()]


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _asymmetric_only(value: list[str]) -> list[str]:
    # A service holding a shared secret could mint any user's token itself, and "none" is no
    # signature at all: only public-key signatures are verified.
    bad = [a for a in value if a.upper().startswith("HS") or a.lower() == "none"]
    if bad:
        raise ValueError(f"only asymmetric algorithms (RS256, ES256, ...) are accepted, got {bad}")
    if not value:
        raise ValueError("give at least one algorithm, e.g. RS256")
    return value


#: A list of strings: a list, or from the environment comma-separated text or a JSON list.
TextList = Annotated[list[str], NoDecode, BeforeValidator(_split)]
#: Optional text: empty (or blank) text is "not set".
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_none)]


class EntrypointSettings(BaseSettings):
    """Base of an entrypoint's options (see the module documentation).

    A subclass sets ``section`` (its config key, for errors) and ``model_config``'s
    ``env_prefix``.
    """

    model_config = SettingsConfigDict(extra="forbid")

    #: The config key errors name: ``http``, ``websocket``, ``mcp``.
    section: ClassVar[str] = "entrypoint"

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """The settings of ``options`` (then the environment); :class:`ConfigError` if invalid."""
        prefix = cls.env_prefix()
        try:
            return cls(**options)
        except SettingsError as exc:
            raise ConfigError(f"{cls.section}: invalid {prefix}* variable: {exc}") from None
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '?'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{cls.section}: invalid option (config or {prefix}*): {details}") from None


class JwtSettings(BaseModel):
    """The JWT options of an entrypoint, the same keys and rules everywhere (a mixin).

    Authentication is on when ``public_key`` is set; only asymmetric algorithms are accepted
    (``none`` and HMAC are refused when the options are read). See :mod:`.auth`.
    """

    public_key: OptionalText = Field(None, description="PEM text or file: enables JWT auth.")
    auth_required: bool = Field(True, description="With a public key: refuse requests without a token.")
    jwt_algorithms: Annotated[TextList, AfterValidator(_asymmetric_only)] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS)
    )
    jwt_audience: OptionalText = None
    jwt_issuer: OptionalText = None
    jwt_leeway: float = Field(0.0, ge=0, description="Seconds of clock skew allowed on exp/nbf.")


class ListenerSettings(BaseModel):
    """The connection bounds of an entrypoint that listens (a mixin; see
    :mod:`bollydog.entrypoint.kit.guard`)."""

    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a connection has to send a request head; then 408 and closed."
    )

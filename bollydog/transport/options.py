"""Options every stream transport takes, parsed once: one pydantic model, one :func:`parse`.

:class:`StreamOptions` holds the consumer-side options the Redis transport and the in-memory one
share (the same names, defaults and meaning, documented in docs/distribute.md); each transport
extends it with its own. :func:`parse` turns a config section's values into the model and any
problem into a :class:`~bollydog.errors.ConfigError` naming the option.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from bollydog.errors import ConfigError
from bollydog.names import MessageFilter

__all__ = ["HIGH", "NORMAL", "StreamOptions", "default_consumer_name", "parse"]

#: The two priority bands: a stream each per domain; under backlog the high one is read first.
HIGH, NORMAL = "high", "normal"

Options = TypeVar("Options", bound="StreamOptions")


def default_consumer_name() -> str:
    """``host-pid-random``: unique per process, so a restart never resumes another's entries."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _patterns(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, Iterable):
        return tuple(str(p) for p in value)
    raise ValueError(f"expected a list of 'domain.name' patterns, got {value!r}")


def _flag(value: Any, default: bool) -> bool:
    """Config flags as YAML and environment variables write them: true/false, yes/no, 1/0."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


class StreamOptions(BaseModel):
    """The consumer options of a stream transport (see docs/distribute.md for each one)."""

    model_config = ConfigDict(extra="forbid")

    consumer: str = ""
    concurrency: int = 64
    batch: int = 32
    claim_idle: float = 30.0
    claim_interval: float = 0.0  # 0: claim_idle / 2
    max_deliveries: int = 5
    high_priority: int = 1
    accept: tuple[str, ...] = ("*",)
    reject: tuple[str, ...] = ()
    grace: float | None = None
    consumer_ttl: float = 5.0
    wait_for_consumer: bool = False
    #: Seconds between checks of who listens to completion notices (bollydog.transport.notices).
    notice_interval: float = Field(0.5, gt=0)
    #: Completion notices waiting to be sent at most; beyond, the oldest are dropped.
    notice_buffer: int = Field(1000, ge=1)

    @field_validator("accept", "reject", mode="before")
    @classmethod
    def _filters(cls, value: Any) -> tuple[str, ...]:
        return _patterns(value)

    @field_validator("consumer", "claim_interval", mode="before")
    @classmethod
    def _empty(cls, value: Any, info: ValidationInfo) -> Any:
        # An empty YAML value (``consumer:``) means the default, not "no name".
        if value is None or value == "":
            return "" if info.field_name == "consumer" else 0.0
        return value

    @field_validator("wait_for_consumer", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> bool:
        return _flag(value, False)

    @model_validator(mode="after")
    def _bounds(self) -> "StreamOptions":
        # Out-of-range values are brought into range rather than refused, as they always were.
        self.consumer = self.consumer or default_consumer_name()
        self.concurrency = max(1, self.concurrency)
        self.batch = max(1, self.batch)
        self.max_deliveries = max(1, self.max_deliveries)
        self.consumer_ttl = max(0.1, self.consumer_ttl)
        self.accept = self.accept or ("*",)
        if not self.claim_interval:
            self.claim_interval = max(0.05, self.claim_idle / 2)
        return self

    def band(self, priority: int) -> str:
        """The band of a message of ``priority``: :data:`HIGH` from ``high_priority`` on."""
        return HIGH if priority >= self.high_priority else NORMAL

    def message_filter(self) -> MessageFilter:
        """What this process takes from the transport (``accept`` minus ``reject``)."""
        return MessageFilter(self.accept, self.reject)

    @property
    def filters(self) -> bool:
        """Whether ``accept``/``reject`` say more than "everything"."""
        return self.accept != ("*",) or bool(self.reject)


def parse(model: type[Options], values: Mapping[str, Any], what: str) -> Options:
    """``values`` (a config section's options) as ``model``; :class:`ConfigError` naming the
    first option that is unknown or invalid. ``what`` names the component (``RedisTransport``)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            raise ConfigError(
                f"distribute: unknown {what} option(s) {', '.join(unknown)}; "
                "see docs/distribute.md for the options"
            ) from None
        first = errors[0]
        option = ".".join(str(part) for part in first["loc"]) or "options"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"distribute.{option}: invalid {what} option {first.get('input')!r}: {message}"
        ) from None

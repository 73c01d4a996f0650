"""The Redis transport's options, parsed once, and the key layout they give.

Every option is optional; docs/distribute.md lists each with its default. An unknown option, or
a value of the wrong kind, is a :class:`~bollydog.errors.ConfigError` naming it.

Layout (``prefix`` defaults to ``bollydog``)::

    {prefix}:stream:{domain}:high     messages of priority >= high_priority
    {prefix}:stream:{domain}:normal   the others; consumer group "{domain}" on both
    {prefix}:reply:{consumer}         replies to this process's requests (one reader)
    {prefix}:deadletter               entries that could not be handled, with their reason
    {prefix}:done:{domain}:{id}       processed ids (only with dedup_ttl > 0)
    {prefix}:consumers:{domain}       live consumers of the domain (heartbeats, see liveness.py)
    {prefix}:claim:{key}              a schedule's tick, claimed once (SET NX PX, expiring)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import field_validator, model_validator

from bollydog.transport.options import StreamOptions, _flag

__all__ = ["DEFAULT_URL", "Keys", "RedisOptions"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _no_cap(value: Any) -> Any:
    """An empty cap (``maxlen:``, 0) means none."""
    return None if value in (None, "", 0, "0") else value


class RedisOptions(StreamOptions):
    """The options of :class:`~bollydog.transport.redis.RedisTransport` (docs/distribute.md):
    those of every stream transport plus the Redis ones."""

    url: str = ""  # default: BOLLYDOG_REDIS_URL, else DEFAULT_URL
    prefix: str = "bollydog"
    block_ms: int = 2000
    maxlen: int | None = 1_000_000
    delete_acked: bool = True
    dedup_ttl: float = 0.0
    reply_maxlen: int = 10_000
    op_timeout: float = 5.0
    reconnect_backoff: float = 0.1
    reconnect_backoff_max: float = 5.0
    deadletter_maxlen: int | None = 100_000
    max_connections: int = 64
    liveness_cache: float = 0.5

    @field_validator("maxlen", "deadletter_maxlen", mode="before")
    @classmethod
    def _caps(cls, value: Any) -> Any:
        return _no_cap(value)

    @field_validator("delete_acked", mode="before")
    @classmethod
    def _delete(cls, value: Any) -> bool:
        return _flag(value, True)

    @field_validator("dedup_ttl", mode="before")
    @classmethod
    def _dedup(cls, value: Any) -> Any:
        return value or 0.0

    @model_validator(mode="after")
    def _redis_bounds(self) -> "RedisOptions":
        self.url = self.url or os.environ.get("BOLLYDOG_REDIS_URL") or DEFAULT_URL
        self.prefix = str(self.prefix)
        self.block_ms = max(1, self.block_ms)
        self.max_connections = max(2, self.max_connections)
        self.liveness_cache = max(0.0, self.liveness_cache)
        return self

    @property
    def block(self) -> float:
        """``block_ms`` in seconds."""
        return self.block_ms / 1000


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one deployment (``prefix``) as seen by one consumer."""

    prefix: str
    consumer: str

    def stream(self, domain: str, band: str) -> str:
        return f"{self.prefix}:stream:{domain}:{band}"

    @property
    def reply(self) -> str:
        """This process's reply stream."""
        return f"{self.prefix}:reply:{self.consumer}"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}:deadletter"

    @property
    def notices(self) -> str:
        """The pub/sub channel of completion notices (bollydog.transport.notices)."""
        return f"{self.prefix}:notices"

    def claim(self, key: str) -> str:
        """A once-per-deployment claim (a schedule's tick), see ``Transport.claim_once``."""
        return f"{self.prefix}:claim:{key}"

    def done(self, domain: str, message_id: str) -> str:
        """The dedup record of a handled message id."""
        return f"{self.prefix}:done:{domain}:{message_id}"

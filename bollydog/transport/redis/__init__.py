"""The Redis Streams transport: ``app: !module bollydog.transport.redis.RedisTransport``.

Needs ``pip install 'bollydog[redis]'``. The transport is :class:`RedisTransport`
(:mod:`bollydog.transport.redis.transport`, which describes the parts and their lifecycle); its
options are :class:`RedisOptions`. See docs/distribute.md.
"""

from __future__ import annotations

try:
    import redis  # noqa: F401  (the driver: without it, say which extra to install)
except ImportError:  # pragma: no cover - exercised by the missing-extra test
    from bollydog.errors import MissingDependencyError

    raise MissingDependencyError("the Redis transport", "redis", "redis") from None

from bollydog.transport.options import HIGH, NORMAL
from bollydog.transport.redis.options import DEFAULT_URL, Keys, RedisOptions
from bollydog.transport.redis.transport import RedisTransport

__all__ = ["DEFAULT_URL", "HIGH", "NORMAL", "Keys", "RedisOptions", "RedisTransport"]

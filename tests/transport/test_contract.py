"""The transport contract (tests/transport/contract.py), run against every transport.

``TestMemory``: the in-memory transport of ``bollydog.testing``, always. ``TestRedis``: the
Redis transport against ``BOLLYDOG_TEST_REDIS_URL``; skipped with the reason when it is unset
or unreachable, failed instead under ``BOLLYDOG_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.transport.contract import TransportContract
from tests.transport.deployments import MemoryDeployment, RedisDeployment


class TestMemory(TransportContract):
    @pytest.fixture
    def deployment(self) -> MemoryDeployment:
        return MemoryDeployment()


class TestRedis(TransportContract):
    @pytest.fixture
    async def deployment(self) -> AsyncIterator[RedisDeployment]:
        import secrets

        import redis.asyncio as aioredis

        from tests.distribute.conftest import redis_url_or_skip

        url = redis_url_or_skip()
        prefix = f"bdtest:{secrets.token_hex(4)}"
        raw = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            yield RedisDeployment(url, prefix, raw)
        finally:
            keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await raw.delete(*keys)
            await raw.aclose()

"""Fixtures of the Redis transport tests.

They need a real Redis: ``BOLLYDOG_TEST_REDIS_URL`` (``eval "$(bash .ci/start-redis.sh)"``
starts a throwaway one). Unset, the tests are skipped; with ``BOLLYDOG_REQUIRE_SERVICES=1`` a
missing or unreachable server fails them instead. Every test gets a key prefix of its own and
deletes only its own keys.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

REDIS_ENV = "BOLLYDOG_TEST_REDIS_URL"
SKIP_REASON = f"set {REDIS_ENV} to a Redis URL; .ci/start-redis.sh starts one and prints it"
_unreachable: dict[str, str] = {}

DOMAINS = {
    "calc": ["tests.distribute.calc_handlers"],
    "audit": ["tests.distribute.audit_handlers"],
    "orch": ["tests.distribute.orch_handlers"],
}


def _required() -> bool:
    return os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1"


def redis_url_or_skip() -> str:
    url = os.environ.get(REDIS_ENV, "").strip()
    if not url:
        if _required():
            pytest.fail(f"BOLLYDOG_REQUIRE_SERVICES=1 but {REDIS_ENV} is not set", pytrace=False)
        pytest.skip(SKIP_REASON)
    if url not in _unreachable:
        import redis

        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            client.ping()
            client.close()
        except Exception as exc:  # any failure means: no usable server
            _unreachable[url] = f"{type(exc).__name__}: {exc}"
    if url in _unreachable:
        why = _unreachable[url]
        if _required():
            pytest.fail(f"Redis required but unreachable at {url}: {why}", pytrace=False)
        pytest.skip(f"Redis at {REDIS_ENV} unreachable ({why}); start it: .ci/start-redis.sh")
    return url


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis.asyncio as aioredis

    value = f"bdtest:{secrets.token_hex(4)}"
    yield value
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{value}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    """A plain redis-py client (strings), as a non-bollydog program would use."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def config(redis_url: str, prefix: str, domains: Iterable[str] = ("calc",), **options: Any) -> dict[str, Any]:
    """A config dict: the given domains plus a ``distribute`` section."""
    sections: dict[str, Any] = {d: {"handlers": DOMAINS[d]} for d in domains}
    sections["distribute"] = {
        "app": "bollydog.transport.redis.RedisTransport",
        "url": redis_url,
        "prefix": prefix,
        **options,
    }
    return sections


@asynccontextmanager
async def process(
    redis_url: str, prefix: str, hosts: Iterable[str], all_domains: Iterable[str] = ("calc",),
    hub_options: Mapping[str, Any] | None = None, **options: Any,
) -> AsyncIterator[Any]:
    """A started hub as one process of a split deployment: it runs ``hosts`` out of
    ``all_domains`` (the others are remote), built by the real composition root."""
    from bollydog.bootstrap import build

    all_domains = list(dict.fromkeys([*all_domains, *hosts]))
    hosts = list(hosts)
    cfg = config(redis_url, prefix, all_domains, **options)
    exclude = [d for d in all_domains if d not in hosts]
    composition = build(cfg, exclude=exclude, include=None, entrypoints=False, hub_options=hub_options)
    hub = composition.hub
    async with hub:
        yield hub


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait until ``predicate()`` is true (test helper only)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def consumers_up(redis_url: str, prefix: str, domain: str, count: int = 1, timeout: float = 20.0,
                       alive: Any = None) -> None:
    """Wait until ``count`` processes announced themselves as consumers of ``domain`` (the
    heartbeat set producers check), e.g. ``bollydog service`` subprocesses starting up.
    ``alive()`` false (a subprocess exited) fails at once."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await client.zcard(f"{prefix}:consumers:{domain}") < count:
            if alive is not None and not alive():
                raise AssertionError(f"a consumer of {domain} exited before announcing itself")
            if loop.time() > deadline:
                raise AssertionError(f"{count} consumer(s) of {domain} did not come up within {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()

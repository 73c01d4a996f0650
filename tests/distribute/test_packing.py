"""The Redis transport's connections pack commands with hiredis, byte for byte what redis-py
would send, and fall back to redis-py for what hiredis cannot pack."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")
pytest.importorskip("hiredis")

from redis.asyncio import Connection  # noqa: E402

from bollydog.transport.redis.connections import _HiredisPacking  # noqa: E402

COMMANDS = [
    ("XADD", "bench:requests", "MAXLEN", "~", 10000, "*", "name", "bench.echo", "payload", '{"a": 1}'),
    ("XACK", "bench:requests", "group", "1700000000000-0", "1700000000000-1"),
    ("SET", "claim:tick", "1", "NX", "PX", 60000),
    ("XADD", b"bytes:key", "*", "field", b"\x00\xffraw"),
    ("CLIENT UNBLOCK", 42),  # a two-word name: redis-py splits it
    ("XADD", "dead", "*", "payload", "caf\udce9"),  # a lone surrogate kept from a non-UTF-8 entry
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_packed_exactly_as_redis_py_packs(args):
    python = Connection(encoding_errors="surrogateescape")
    packing = _HiredisPacking(encoding_errors="surrogateescape")
    assert b"".join(packing.pack_command(*args)) == b"".join(python.pack_command(*args))

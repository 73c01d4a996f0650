"""Redis specifics of delivery: the dedup record, entries Redis alone can carry, Redis down or
restarted, telemetry of dead letters. What every transport does is in tests/transport/contract.py."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time

import pytest

from bollydog.errors import ConfigError, TransportError
from bollydog.transport import wire
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import process


async def read_replies(raw, key: str, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
    """``count`` reply entries from ``key`` (XREAD BLOCK, as any client would)."""
    replies: list[dict[str, str]] = []
    last = "0-0"
    deadline = time.monotonic() + timeout
    while len(replies) < count and time.monotonic() < deadline:
        response = await raw.xread({key: last}, block=200, count=count)
        for _, entries in response or ():
            for entry_id, fields in entries:
                last = entry_id
                replies.append(fields)
    assert len(replies) == count, f"expected {count} replies, got {replies}"
    return replies


async def test_dedup_answers_a_repeated_id_from_the_record(redis_url, prefix, raw):
    calc.SLOW_RUNS.clear()
    async with process(redis_url, prefix, ["calc"], dedup_ttl=60), process(redis_url, prefix, []) as front:
        message = calc.Slow(seconds=0.01)
        assert await front.execute(message) == 0.01
        again = calc.Slow.model_validate(message.model_dump())  # same iid: a producer's retry
        assert await front.transport.request(again) == 0.01
    assert calc.SLOW_RUNS == [0.01]


def test_unknown_option_is_a_config_error():
    from bollydog.transport.redis import RedisTransport

    with pytest.raises(ConfigError, match="unknown RedisTransport option"):
        RedisTransport("redis://x", max_delivery=3)


def test_missing_redis_raises_missing_dependency():
    code = "import sys; sys.modules['redis'] = None; import bollydog.transport.redis"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "MissingDependencyError" in proc.stderr
    assert "the Redis transport needs the 'redis' package" in proc.stderr
    assert "pip install 'bollydog[redis]'" in proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError("private redis-server did not start")


async def test_redis_restart_producers_fail_fast_consumers_reconnect(redis_url, prefix):
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary to restart a private server")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    try:
        async with (
            process(url, prefix, ["calc"], reconnect_backoff=0.05, reconnect_backoff_max=0.2, block_ms=500),
            process(url, prefix, [], reconnect_backoff=0.05, reconnect_backoff_max=0.2, block_ms=500) as front,
        ):
            assert await front.execute(calc.Add(a=1, b=1)) == 2
            server.kill()
            server.wait()
            started = time.monotonic()
            with pytest.raises(TransportError):
                await front.execute(calc.Add(a=1, b=2, expire_time=10))
            assert time.monotonic() - started < 2
            server = _redis_server(port)  # restarted, empty: streams and groups are gone
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert await front.execute(calc.Add(a=2, b=2, expire_time=1)) == 4
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            # and it keeps working
            assert await front.execute(calc.Add(a=5, b=5)) == 10
    finally:
        server.kill()
        server.wait()


async def test_dead_letters_are_counted_by_telemetry(redis_url, prefix, raw):
    from bollydog.telemetry import TelemetryPlugin
    from tests.telemetry.conftest import metric_points

    stream = f"{prefix}:stream:calc:normal"
    async with process(redis_url, prefix, ["calc"]) as consumer:
        plugin = TelemetryPlugin(traces_exporter="none", metrics_exporter="memory", install_global=False)
        plugin.hub = consumer
        await plugin.start()
        try:
            await raw.xadd(stream, {"name": "calc.add", "payload": "{not json"})
            for _ in range(100):
                if await consumer.transport.dead_letters():
                    break
                await asyncio.sleep(0.02)
            (point,) = metric_points(plugin, "bollydog.messages.dead_lettered")
            assert point.value == 1
            assert dict(point.attributes)["domain"] == "calc" and dict(point.attributes)["name"] == "add"
        finally:
            await plugin.stop()


async def test_entry_that_is_not_utf8_is_dead_lettered_and_the_consumer_continues(redis_url, prefix):
    import redis.asyncio as aioredis

    reply_key = f"{prefix}:replies"
    stream = f"{prefix}:stream:calc:normal"
    binary = aioredis.Redis.from_url(redis_url)  # bytes in, as a msgpack producer would send
    try:
        async with process(redis_url, prefix, ["calc"], claim_idle=0.3) as consumer:
            await binary.xadd(stream, {b"name": b"calc.add", b"payload": b"\xff\xfe{}", b"reply_to": reply_key.encode()})
            await binary.xadd(stream, {"name": "calc.add", "payload": '{"a": 1, "b": 1}', "reply_to": reply_key})
            async with aioredis.Redis.from_url(redis_url, decode_responses=True) as raw:
                replies = await read_replies(raw, reply_key, 2)
                assert sorted(r["ok"] for r in replies) == ["0", "1"]
                (letter,) = await consumer.transport.dead_letters()
                assert "field 'payload' is not valid UTF-8" in letter["dl_reason"]
                assert letter["payload"] == "\ufffd\ufffd{}"  # listed for display
                assert (await raw.xpending(stream, "calc"))["pending"] == 0
            # The dead-letter stream holds the bytes as they came, for a replay or an inspection.
            ((_, stored),) = await binary.xrange(f"{prefix}:deadletter")
            assert stored[b"payload"] == b"\xff\xfe{}"
            assert consumer.transport.consumers and all(c.reading for c in consumer.transport.consumers)
    finally:
        await binary.aclose()


def test_payload_nested_too_deep_is_a_wire_error():
    from bollydog.transport import wire

    with pytest.raises(wire.WireError, match="'payload' is not JSON"):
        wire.decode({"name": "calc.add", "payload": "[" * 100_000})


async def test_dead_letter_metric_names_only_registered_messages(redis_url, prefix, raw):
    from bollydog.telemetry import TelemetryPlugin
    from tests.telemetry.conftest import metric_points

    stream = f"{prefix}:stream:calc:normal"
    async with process(redis_url, prefix, ["calc"]) as consumer:
        plugin = TelemetryPlugin(traces_exporter="none", metrics_exporter="memory", install_global=False)
        plugin.hub = consumer
        await plugin.start()
        try:
            for i in range(3):  # names an outside producer made up: one series, not three
                await raw.xadd(stream, {"name": f"calc.made-up-{i}", "payload": "{}"})
            for _ in range(100):
                if len(await consumer.transport.dead_letters()) == 3:
                    break
                await asyncio.sleep(0.02)
            (point,) = metric_points(plugin, "bollydog.messages.dead_lettered")
            assert point.value == 3 and dict(point.attributes)["name"] == "unknown"
        finally:
            await plugin.stop()


async def test_redis_unreachable_fails_fast(prefix):
    async with process("redis://127.0.0.1:1/0", prefix, [], op_timeout=1.0) as front:
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot send calc.add"):
            await front.execute(calc.Add(a=1, b=2, expire_time=5))
        assert time.monotonic() - started < 1.5
        with pytest.raises(TransportError):
            await front.execute(calc.Noted(text="lost"))


async def test_a_silent_redis_fails_requests_within_op_timeout(prefix):
    """A server that accepts connections and never answers: op_timeout bounds each round trip."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from bollydog.transport.redis.connections import BlockingReader, Connections
    from bollydog.transport.redis.options import RedisOptions

    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    try:
        async with process(url, prefix, [], op_timeout=0.3, block_ms=100) as front:
            started = time.monotonic()
            with pytest.raises(TransportError, match=r"no answer from Redis within 0\.3s \(op_timeout\)"):
                await front.execute(calc.Add(a=1, b=2, expire_time=5))
            assert time.monotonic() - started < 1.0
        connections = Connections(RedisOptions(url=url, op_timeout=0.3, block_ms=100))
        reader: BlockingReader = connections.reader("test")
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"no answer from Redis within 0\.4s \(block_ms \+ op_timeout\)"):
            await reader.read("xread", {f"{prefix}:s": "0"}, block=100)
        assert time.monotonic() - started < 1.0 and reader.client_id is None
        await connections.close()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

"""Delivery guarantees: foreign producers, dead letters, reclaiming, accept/reject, Redis restarts."""

from __future__ import annotations

import asyncio
import json
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


async def test_raw_xadd_producer_gets_its_command_handled(redis_url, prefix, raw):
    reply_key = f"{prefix}:raw-replies"
    stream = f"{prefix}:stream:calc:normal"
    async with process(redis_url, prefix, ["calc"]):
        entry = await raw.xadd(stream, {
            "v": "1", "kind": "command", "name": "calc.add", "payload": json.dumps({"a": 2, "b": 5}),
            "reply_to": reply_key,
        })
        traced = await raw.xadd(stream, {
            "name": "calc.whoami", "payload": "{}", "reply_to": reply_key, "id": "c" * 32,
            "traceparent": f"00-{'1' * 32}-{'2' * 16}-01", "session": json.dumps({"username": "eve"}),
        })
        first, second = await read_replies(raw, reply_key, 2)
    assert first["ok"] == "1" and json.loads(first["result"]) == 7 and first["entry"] == entry
    assert len(first["id"]) == 32  # generated: the producer sent none
    assert second["entry"] == traced and second["id"] == "c" * 32
    seen = json.loads(second["result"])
    assert seen["trace_id"] == "1" * 32 and seen["parent_span_id"] == "2" * 16
    assert seen["username"] == "eve" and seen["iid"] == "c" * 32


async def test_bad_payloads_go_to_dead_letters_and_the_consumer_continues(redis_url, prefix, raw):
    reply_key = f"{prefix}:replies"
    stream = f"{prefix}:stream:calc:normal"
    bad = [
        ({"name": "calc.add", "payload": "{not json"}, "not JSON"),
        ({"name": "calc.nosuch", "payload": "{}"}, "unknown message 'calc.nosuch'"),
        ({"name": "os.system", "payload": '{"command": "true"}'}, "unknown message 'os.system'"),
        ({"payload": "{}"}, "missing or invalid 'name'"),
        ({"name": "calc.add", "payload": json.dumps({"a": 1, "b": 2, "iid": "0" * 32})}, "reserved fields"),
        ({"name": "calc.add", "payload": "[1, 2]"}, "must be a JSON object"),
        ({"name": "calc.noted", "kind": "command", "payload": '{"text": "x"}'}, "is not a command"),
        ({"name": "calc.add", "payload": json.dumps({"a": "x", "b": 1}), "reply_to": reply_key, "id": "f" * 32},
         "invalid calc.add: a:"),
    ]
    async with process(redis_url, prefix, ["calc"]) as consumer:
        for fields, _ in bad:
            await raw.xadd(stream, fields)
        await raw.xadd(stream, {"name": "calc.add", "payload": '{"a": 1, "b": 1}', "reply_to": reply_key, "id": "e" * 32})
        replies = {r["id"]: r for r in await read_replies(raw, reply_key, 2)}
        assert json.loads(replies["e" * 32]["result"]) == 2
        failed = replies["f" * 32]
        assert failed["ok"] == "0" and failed["error_type"] == "bollydog.transport.wire.WireError"
        assert "invalid calc.add: a:" in failed["error"]
        dead: list = []
        for _ in range(100):
            dead = await consumer.transport.dead_letters()
            if len(dead) == len(bad):
                break
            await asyncio.sleep(0.02)
        assert [d["dl_stream"] for d in dead] == [stream] * len(bad)
        for fields, reason in bad:  # handled concurrently: dead letters come in any order
            (letter,) = [d for d in dead if {k: v for k, v in d.items() if not k.startswith("dl_")} == fields]
            assert reason in letter["dl_reason"], (reason, letter)
        assert (await raw.xpending(stream, "calc"))["pending"] == 0
        # Replay puts an entry back where it came from; still bad, it comes back to the dead letters.
        replayed = await consumer.transport.replay([dead[0]["dl_id"]])
        assert replayed == [dead[0]["dl_id"]]
        await asyncio.sleep(0.2)
        again = await consumer.transport.dead_letters()
        assert len(again) == len(bad) and again[-1]["payload"] == dead[0]["payload"]
        assert again[-1]["dl_id"] != dead[0]["dl_id"]


async def test_pending_entries_of_a_dead_consumer_are_reclaimed(redis_url, prefix, raw):
    reply_key = f"{prefix}:replies"
    stream = f"{prefix}:stream:calc:normal"
    await raw.xgroup_create(stream, "calc", id="0", mkstream=True)
    entry = await raw.xadd(stream, {"name": "calc.add", "payload": '{"a": 3, "b": 4}', "reply_to": reply_key, "id": "a" * 32})
    # A consumer reads it and dies without acknowledging.
    assert await raw.xreadgroup("calc", "ghost", {stream: ">"}, count=10)
    async with process(redis_url, prefix, ["calc"], claim_idle=0.3):
        (reply,) = await read_replies(raw, reply_key, 1)
        assert reply["entry"] == entry and json.loads(reply["result"]) == 7
        for _ in range(100):
            if (await raw.xpending(stream, "calc"))["pending"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await raw.xpending(stream, "calc"))["pending"] == 0


async def test_entry_delivered_too_many_times_goes_to_dead_letters(redis_url, prefix, raw):
    reply_key = f"{prefix}:replies"
    stream = f"{prefix}:stream:calc:normal"
    await raw.xgroup_create(stream, "calc", id="0", mkstream=True)
    await raw.xadd(stream, {"name": "calc.add", "payload": '{"a": 3, "b": 4}', "reply_to": reply_key, "id": "b" * 32})
    assert await raw.xreadgroup("calc", "ghost", {stream: ">"}, count=10)
    async with process(redis_url, prefix, ["calc"], claim_idle=0.2, max_deliveries=1) as consumer:
        (reply,) = await read_replies(raw, reply_key, 1)
        assert reply["ok"] == "0" and reply["error_type"] == "bollydog.errors.TransportError"
        (letter,) = await consumer.transport.dead_letters()
        assert "delivered 2 times without an acknowledgement" in letter["dl_reason"]


async def test_long_handler_is_not_stolen_by_another_consumer(redis_url, prefix):
    """A handler slower than claim_idle: its consumer keeps the entry alive (XCLAIM JUSTID), so
    an eager second consumer never takes it over and runs it again."""
    calc.SLOW_RUNS.clear()
    async with (
        process(redis_url, prefix, ["calc"], claim_idle=0.3, claim_interval=10),
        process(redis_url, prefix, []) as front,
    ):
        slow = asyncio.ensure_future(front.execute(calc.Slow(seconds=1.2, expire_time=5)))
        for _ in range(200):
            if calc.SLOW_RUNS:
                break
            await asyncio.sleep(0.01)
        async with process(redis_url, prefix, ["calc"], claim_idle=0.3, claim_interval=0.05):
            assert await slow == 1.2
    assert calc.SLOW_RUNS == [1.2]


async def test_accept_and_reject_patterns(redis_url, prefix):
    async with (
        process(redis_url, prefix, ["calc"], reject=["calc.fail"], accept=["calc.*"]) as consumer,
        process(redis_url, prefix, []) as front,
    ):
        assert await front.execute(calc.Add(a=1, b=1)) == 2
        started = time.monotonic()
        with pytest.raises(wire.WireError, match="calc.fail is not accepted"):
            await front.execute(calc.Fail(text="x"))
        assert time.monotonic() - started < 1
        (letter,) = await consumer.transport.dead_letters()
        assert "accept/reject" in letter["dl_reason"]
        assert consumer.transport.accepts("calc.add") and not consumer.transport.accepts("calc.fail")
        assert not consumer.transport.accepts("other.add")


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
                assert "'payload' is not JSON" in letter["dl_reason"]
                assert (await raw.xpending(stream, "calc"))["pending"] == 0
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

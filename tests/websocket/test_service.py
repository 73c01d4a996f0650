"""SocketService end to end: a real uvicorn on a free port, a real WebSocket client."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bollydog.entrypoint.websocket.app import SocketService
from bollydog.errors import INTERNAL_MESSAGE, ConfigError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.websocket.conftest import HANDLERS, TIMEOUT, call, recv, send, start
from tests.websocket.handlers import Pinged

# -- lifecycle ---------------------------------------------------------------------------------


async def test_port_zero_exposes_the_real_port_and_keeps_signal_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hub, service = await start()
    try:
        assert service.port > 0
        assert service.url == f"ws://127.0.0.1:{service.port}/"
        async with connect(service.url) as client:
            assert (await call(client, {"name": "echo", "text": "x"}))[-1]["data"] == {"echo": "x"}
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        await hub.stop()
    assert {s: signal.getsignal(s) for s in before} == before


async def test_stop_closes_open_sockets_with_1001_after_in_flight_requests_answer() -> None:
    hub, service = await start()
    async with connect(service.url) as client:
        await send(client, {"name": "slow", "id": "s", "delay": 0.2, "tag": "done"})
        assert (await recv(client))["type"] == "accepted"
        stopping = asyncio.create_task(hub.stop())
        assert await recv(client) == {"type": "result", "id": "s", "data": "done"}
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert client.close_code == 1001
        await stopping
    assert not service.connections


async def test_request_running_past_the_grace_gets_an_error_frame_then_1001(caplog) -> None:
    caplog.set_level(logging.INFO)
    grace = 1.0
    hub = HubService(apps=[AppService.create_from(domain="wsdemo", handlers=[HANDLERS])], shutdown_grace=grace)
    service = hub.add_entrypoint(SocketService(port=0))
    await hub.start()
    loop = asyncio.get_running_loop()
    async with connect(service.url) as client:
        await send(client, {"name": "slow", "id": "long", "delay": 30, "tag": "never"})
        await send(client, {"name": "slow", "id": "short", "delay": 0.2, "tag": "done"})
        assert [(await recv(client))["type"] for _ in range(2)] == ["accepted", "accepted"]
        started = loop.time()
        stopping = asyncio.create_task(hub.stop())
        assert await recv(client) == {"type": "result", "id": "short", "data": "done"}
        assert await recv(client) == {
            "type": "error", "id": "long", "error": "HubNotRunningError",
            "message": "the hub stopped before this message completed", "errors": [], "status": 503,
            "retry_after": 1,
        }
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), TIMEOUT)
        assert client.close_code == 1001
        await stopping
    # One grace period for the socket and the hub together, not one after the other.
    assert loop.time() - started < grace * 1.7
    gc.collect()  # an exception nobody retrieved is reported when its future is collected
    await asyncio.sleep(0)
    assert not [rec for rec in caplog.records if "never retrieved" in rec.getMessage()]
    cut = [rec for rec in caplog.records if " cut: " in rec.getMessage()]
    assert len(cut) == 1 and cut[0].getMessage().startswith("slow (")


async def test_a_shorter_socket_grace_cuts_its_requests_first(caplog) -> None:
    hub = HubService(apps=[AppService.create_from(domain="wsdemo", handlers=[HANDLERS])], shutdown_grace=1.0)
    service = hub.add_entrypoint(SocketService(port=0, shutdown_grace=0.2))
    await hub.start()
    loop = asyncio.get_running_loop()
    async with connect(service.url) as client:
        await send(client, {"name": "slow", "id": 7, "delay": 30, "tag": "never"})
        assert (await recv(client))["type"] == "accepted"
        started = loop.time()
        stopping = asyncio.create_task(hub.stop())
        frame = await recv(client)
        assert loop.time() - started < 1.0  # before the hub's own grace is over
        assert frame["type"] == "error" and frame["id"] == 7 and frame["error"] == "HubNotRunningError"
        assert set(frame) == {"type", "id", "error", "message", "errors", "status", "retry_after"}
        await stopping
    gc.collect()
    await asyncio.sleep(0)
    assert not [rec for rec in caplog.records if "never retrieved" in rec.getMessage()]


async def test_busy_port_fails_to_start_with_a_clear_error() -> None:
    hub, service = await start()
    try:
        other = SocketService(port=service.port)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{service.port}"):
            other.hub = hub
            await other.on_start()
    finally:
        await hub.stop()


def test_options_come_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOLLYDOG_WS_SERVICE_PORT", "9123")
    monkeypatch.setenv("BOLLYDOG_WS_SERVICE_HOST", "0.0.0.0")
    monkeypatch.setenv("BOLLYDOG_WS_SERVICE_EXCLUDE", "bollydog.*, wsdemo.secret")
    from_env = SocketService()
    assert (from_env.settings.host, from_env.settings.port) == ("0.0.0.0", 9123)
    assert from_env.settings.exclude == ["bollydog.*", "wsdemo.secret"]
    assert SocketService(port=9000).settings.port == 9000  # config wins
    monkeypatch.setenv("BOLLYDOG_WS_SERVICE_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="port"):
        SocketService()


# -- requests ----------------------------------------------------------------------------------


async def test_request_gets_accepted_then_result(ws) -> None:
    accepted, result = await call(ws, {"name": "echo", "id": "r1", "text": "ab", "times": 2})
    assert accepted["type"] == "accepted" and accepted["id"] == "r1"
    assert len(accepted["message_id"]) == 32 and len(accepted["trace_id"]) == 32
    assert accepted["traceparent"].startswith(f"00-{accepted['trace_id']}-")
    assert result == {"type": "result", "id": "r1", "data": {"echo": "abab"}}


async def test_domain_qualified_name_and_missing_id(ws) -> None:
    frames = await call(ws, {"name": "wsdemo.echo", "text": "q"})
    assert [f["id"] for f in frames] == [None, None]
    assert frames[-1]["data"] == {"echo": "q"}


async def test_partial_results_stream_before_the_result(ws) -> None:
    frames = await call(ws, {"name": "countdown", "id": 9, "n": 3})
    assert [f["type"] for f in frames] == ["accepted", "partial", "partial", "partial", "partial", "result"]
    assert [f["data"] for f in frames[1:]] == [{"left": 3}, {"left": 2}, {"left": 1}, "liftoff", "liftoff"]
    assert all(f["id"] == 9 for f in frames)


async def test_handler_failure_is_an_error_frame(ws) -> None:
    frames = await call(ws, {"name": "boom", "id": "b"})
    assert frames[0]["type"] == "accepted"
    assert frames[-1] == {
        "type": "error", "id": "b", "error": "ValueError", "message": INTERNAL_MESSAGE, "errors": [],
        "status": 500,
    }
    assert (await call(ws, {"name": "echo", "text": "still open"}))[-1]["type"] == "result"


async def test_requests_run_concurrently_on_one_socket(ws) -> None:
    started = time.perf_counter()
    await send(ws, {"name": "slow", "id": "a", "delay": 0.4, "tag": "A"})
    await send(ws, {"name": "slow", "id": "b", "delay": 0.2, "tag": "B"})
    await send(ws, {"name": "countdown", "id": "c", "n": 2})
    await send(ws, {"name": "echo", "id": "d", "text": "D"})
    results: dict[str, object] = {}
    order: list[str] = []
    while len(results) < 4:
        frame = await recv(ws)
        if frame["type"] == "result":
            results[frame["id"]] = frame["data"]
            order.append(frame["id"])
    assert results == {"a": "A", "b": "B", "c": "liftoff", "d": {"echo": "D"}}
    assert order[-2:] == ["b", "a"]  # the slow ones finish last, in their own time
    assert time.perf_counter() - started < 0.55  # not 0.6+ as one after the other


async def test_traceparent_joins_the_callers_trace(ws) -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    frames = await call(ws, {"name": "whoami", "id": 1, "traceparent": f"00-{trace_id}-{span_id}-01"})
    assert frames[0]["trace_id"] == trace_id
    assert frames[-1]["data"]["trace_id"] == trace_id
    assert frames[-1]["data"]["parent_span_id"] == span_id
    session = frames[-1]["data"]["session"]
    assert session  # every connection has a session, the same for all its requests
    assert (await call(ws, {"name": "whoami"}))[-1]["data"]["session"] == session
    # An invalid traceparent is ignored (W3C): a new trace starts.
    fresh = await call(ws, {"name": "whoami", "traceparent": "garbage"})
    assert fresh[-1]["data"]["trace_id"] != trace_id and fresh[-1]["data"]["parent_span_id"] is None


async def test_ping(ws) -> None:
    await send(ws, {"type": "ping", "id": 3})
    assert await recv(ws) == {"type": "pong", "id": 3}


# -- malformed frames: an error frame, and the connection stays open ----------------------------


@pytest.mark.parametrize(
    ("frame", "error", "request_id"),
    [
        ("{not json", "InvalidFrameError", None),
        ("[1, 2]", "InvalidFrameError", None),
        ('"echo"', "InvalidFrameError", None),
        ({"id": 4, "text": "no name"}, "InvalidFrameError", 4),
        ({"id": 5, "name": ["echo"]}, "InvalidFrameError", 5),
        ({"id": 6, "type": "dance"}, "InvalidFrameError", 6),
        ({"id": 7, "name": "nosuchmessage"}, "UnknownMessageError", 7),
        ({"id": 8, "name": "json.decoder.JSONDecodeError"}, "UnknownMessageError", 8),
        ({"id": 9, "name": "tests.websocket.handlers.Echo", "text": "x"}, "UnknownMessageError", 9),
        ({"id": 10, "name": "echo", "text": 3}, "InvalidMessageError", 10),
        ({"id": 11, "name": "echo", "text": "x", "bogus": 1}, "InvalidMessageError", 11),
        ({"id": 12, "name": "echo", "text": "x", "trace_id": "0" * 32}, "InvalidMessageError", 12),
        ({"id": 13, "name": "echo", "text": "x", "iid": "f" * 32}, "InvalidMessageError", 13),
        ({"id": 14, "type": "subscribe", "topics": "example.*"}, "InvalidFrameError", 14),
        # Hostile envelopes: an unhashable type, nesting deeper than the parser's recursion.
        ({"id": 15, "type": ["request"], "name": "echo"}, "InvalidFrameError", 15),
        ('{"name": "echo", "text": ' + "[" * 100_000 + "]" * 100_000 + "}", "InvalidFrameError", None),
        ('{"name": "echo", "id": NaN, "text": "x"}', "InvalidFrameError", None),
    ],
)
async def test_malformed_frame_gets_an_error_and_the_socket_stays_open(ws, frame, error, request_id) -> None:
    await send(ws, frame)
    reply = await recv(ws)
    assert reply["type"] == "error" and reply["error"] == error and reply["id"] == request_id
    assert reply["message"]
    if error == "InvalidMessageError":
        assert reply["errors"] and {"field", "message", "type"} <= set(reply["errors"][0])
    assert (await call(ws, {"name": "echo", "id": "after", "text": "ok"}))[-1]["data"] == {"echo": "ok"}


async def test_reserved_field_error_names_the_field(ws) -> None:
    (reply,) = await call(ws, {"name": "echo", "text": "x", "span_id": "0" * 16})
    assert reply["errors"] == [
        {"field": "span_id", "message": "reserved field, cannot be set by a client", "type": "reserved"}
    ]


async def test_binary_frames_carry_json_too(ws) -> None:
    await ws.send(json.dumps({"name": "echo", "id": "bin", "text": "b"}).encode())
    assert (await recv(ws))["type"] == "accepted"
    assert (await recv(ws))["data"] == {"echo": "b"}
    await ws.send(b"\xff\x00")
    assert (await recv(ws))["error"] == "InvalidFrameError"


# -- subscriptions -----------------------------------------------------------------------------


async def subscribe(client, topics: list[str]) -> dict:
    await send(client, {"type": "subscribe", "id": "sub", "topics": topics})
    return await recv(client)


async def test_subscriber_sees_messages_dispatched_through_the_socket(service: SocketService) -> None:
    async with connect(service.url) as watcher, connect(service.url) as caller:
        assert await subscribe(watcher, ["wsdemo.*"]) == {"type": "subscribed", "id": "sub", "topics": ["wsdemo.*"]}
        await call(caller, {"name": "echo", "text": "hi"})
        note = await recv(watcher)
        assert note["type"] == "message" and note["topic"] == "wsdemo.echo"
        assert note["data"]["text"] == "hi" and len(note["data"]["iid"]) == 32
        assert note["result"] == {"echo": "hi"}
        await call(caller, {"name": "boom"})
        failed = await recv(watcher)
        assert failed["topic"] == "wsdemo.boom" and failed["error"]["error"] == "ValueError"


async def test_subscriber_sees_events_published_anywhere_in_the_hub(service: SocketService) -> None:
    async with connect(service.url) as watcher, connect(service.url) as caller:
        await subscribe(watcher, ["#"])
        await call(caller, {"name": "ring", "value": 5})
        topics = {(await recv(watcher))["topic"] for _ in range(2)}
        assert topics == {"wsdemo.pinged", "wsdemo.ring"}
        # An Event published in-process, not through the socket, is seen as well.
        await service.hub.execute(Pinged(value=6))
        note = await recv(watcher)
        assert note["topic"] == "wsdemo.pinged" and note["data"]["value"] == 6


async def test_wildcards_and_unsubscribe(service: SocketService) -> None:
    async with connect(service.url) as watcher, connect(service.url) as caller:
        await subscribe(watcher, ["*.echo", "other.#"])
        await call(caller, {"name": "countdown", "n": 1})  # not matched
        await call(caller, {"name": "echo", "text": "1"})
        assert (await recv(watcher))["topic"] == "wsdemo.echo"
        await send(watcher, {"type": "unsubscribe", "id": "u", "topics": ["*.echo"]})
        assert await recv(watcher) == {"type": "unsubscribed", "id": "u", "topics": ["other.#"]}
        await call(caller, {"name": "echo", "text": "2"})
        await send(watcher, {"type": "ping", "id": "p"})
        assert await recv(watcher) == {"type": "pong", "id": "p"}  # no notification came first
        await send(watcher, {"type": "subscribe", "topics": ["wsdemo.#"]})
        await recv(watcher)
        await send(watcher, {"type": "unsubscribe"})
        assert (await recv(watcher))["topics"] == []


async def test_a_subscriber_receives_its_own_requests_too(ws) -> None:
    await subscribe(ws, ["wsdemo.echo"])
    await send(ws, {"name": "echo", "id": 1, "text": "me"})
    kinds = [(await recv(ws))["type"] for _ in range(3)]
    # The notification comes from the hub as the message completes, the result frame from the
    # request: after "accepted", their order is not specified.
    assert kinds[0] == "accepted" and sorted(kinds[1:]) == ["message", "result"]


# -- include / exclude -------------------------------------------------------------------------


async def test_include_and_exclude_limit_what_clients_can_send_and_see() -> None:
    hub, service = await start(include=["wsdemo.*"], exclude=["wsdemo.secret", "wsdemo.boo*"])
    try:
        async with connect(service.url) as client, connect(service.url) as watcher:
            assert (await call(client, {"name": "echo", "text": "ok"}))[-1]["type"] == "result"
            for name in ("secret", "wsdemo.secret", "boom", "taskcount", "bollydog.taskcount"):
                (reply,) = await call(client, {"name": name})
                assert reply["error"] == "UnknownMessageError", name
                assert "unknown message" in reply["message"]
            await subscribe(watcher, ["#"])
            await hub.execute(Pinged(value=1))
            await call(client, {"name": "echo", "text": "seen"})
            assert (await recv(watcher))["topic"] == "wsdemo.pinged"
            assert (await recv(watcher))["topic"] == "wsdemo.echo"
    finally:
        await hub.stop()


async def test_builtins_are_served_when_not_excluded(ws) -> None:
    frames = await call(ws, {"name": "bollydog.taskcount"})
    assert frames[-1]["data"] == {"running": 0, "queued": 0}


async def test_subscriptions_can_be_disabled() -> None:
    hub, service = await start(subscriptions=False)
    try:
        assert hub.registry.event_handlers(Pinged)[-1].qualname.endswith("pinged")
        async with connect(service.url) as client:
            (reply,) = await call(client, {"type": "subscribe", "id": 1, "topics": ["#"]})
            assert reply["error"] == "InvalidFrameError" and "disabled" in reply["message"]
    finally:
        await hub.stop()


async def test_observer_does_not_make_the_base_event_addressable(ws) -> None:
    (reply,) = await call(ws, {"name": "event"})
    assert reply["error"] == "UnknownMessageError"


async def test_new_connections_are_refused_while_stopped() -> None:
    hub, service = await start()
    url = service.url
    await hub.stop()
    with pytest.raises((OSError, InvalidStatus)):
        async with connect(url, open_timeout=2):
            pass


async def test_a_hostile_topic_pattern_neither_blocks_nor_breaks_other_subscribers(service: SocketService) -> None:
    # Many '#' segments once made matching take seconds per message (and overflow the stack
    # beyond ~500), in the hub's observer: every other subscriber lost its notifications.
    async with connect(service.url) as hostile, connect(service.url) as watcher:
        await subscribe(hostile, ["#." * 250 + "nomatch", "#." * 2000 + "nomatch"])
        await subscribe(watcher, ["wsdemo.pinged"])
        started = asyncio.get_running_loop().time()
        await service.hub.execute(Pinged(value=1))
        assert asyncio.get_running_loop().time() - started < 0.5
        assert (await recv(watcher))["topic"] == "wsdemo.pinged"


async def test_exclude_is_case_insensitive_like_http() -> None:
    hub, service = await start(exclude=["WSDEMO.Secret"])
    try:
        async with connect(service.url) as client:
            (reply,) = await call(client, {"name": "secret"})
            assert reply["error"] == "UnknownMessageError"
    finally:
        await hub.stop()


async def test_subscriptions_per_connection_are_capped() -> None:
    from websockets.asyncio.client import connect as ws_connect

    from tests.websocket.conftest import start

    hub, service = await start(max_topics=2)
    try:
        async with ws_connect(service.url) as client:
            await send(client, {"type": "subscribe", "id": 1, "topics": ["a.*", "b.*"]})
            assert (await recv(client))["topics"] == ["a.*", "b.*"]
            await send(client, {"type": "subscribe", "id": 2, "topics": ["c.*"]})
            refused = await recv(client)
            assert refused["type"] == "error" and "max_topics" in refused["message"]
            await send(client, {"type": "unsubscribe", "id": 3, "topics": ["a.*"]})
            await recv(client)
            await send(client, {"type": "subscribe", "id": 4, "topics": ["c.*"]})
            assert (await recv(client))["topics"] == ["b.*", "c.*"]
    finally:
        await hub.stop()

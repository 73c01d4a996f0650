"""What a hostile or careless client must not be able to do to the server and its hub."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from websockets.exceptions import ConnectionClosed

from bollydog.encoding import dumps, dumps_text
from bollydog.entrypoint.websocket.connection import Connection
from bollydog.models.base import Session
from tests.websocket.conftest import TIMEOUT, call, recv, send, start
from tests.websocket.handlers import FEEDBACK, SEEN, Echo, Pinged, Slow

# -- Events from clients -----------------------------------------------------------------------


async def test_a_client_cannot_publish_an_event(ws) -> None:
    before = list(SEEN)
    (reply,) = await call(ws, {"name": "pinged", "id": "forged", "value": 1_000_000_000})
    assert reply == {
        "type": "error", "id": "forged", "error": "EventNotAccepted", "status": 403, "errors": [],
        "message": reply["message"],
    }
    assert "wsdemo.pinged" in reply["message"] and "accept_from_clients" in reply["message"]
    assert SEEN == before  # no handler ran
    assert (await call(ws, {"name": "echo", "text": "ok"}))[-1]["data"] == {"echo": "ok"}


async def test_an_event_that_opts_in_may_be_published_by_a_client(ws) -> None:
    frames = await call(ws, {"name": "feedback", "id": 1, "text": "nice"})
    assert [f["type"] for f in frames] == ["accepted", "result"]
    assert FEEDBACK[-1] == "nice"


# -- lone UTF-16 surrogates ---------------------------------------------------------------------

# Sent as JSON escapes: the frame is ASCII and valid JSON, the decoded string is no Unicode.
LONE = "\\ud800"


@pytest.mark.parametrize(
    "frame",
    [
        '{"id": "%s", "name": "echo", "text": "x"}' % LONE,
        '{"id": "%s", "type": "ping"}' % LONE,
        '{"id": 1, "name": "echo%s", "text": "x"}' % LONE,
        '{"id": 1, "name": "%s"}' % LONE,
        '{"id": 1, "type": "subscribe", "topics": ["wsdemo.%s"]}' % LONE,
        '{"id": 1, "type": "unsubscribe", "topics": ["%s"]}' % LONE,
    ],
)
async def test_a_lone_surrogate_in_the_envelope_gets_an_error_and_the_socket_stays_open(ws, frame) -> None:
    await send(ws, frame)
    reply = await recv(ws)
    assert reply["type"] == "error" and reply["error"] == "InvalidFrameError" and reply["status"] == 400
    assert reply["id"] in (None, 1)
    assert (await call(ws, {"name": "echo", "id": "after", "text": "ok"}))[-1]["data"] == {"echo": "ok"}


async def test_a_lone_surrogate_in_a_field_is_answered_escaped(service) -> None:
    async with connect(service.url) as watcher, connect(service.url) as client:
        await send(watcher, {"type": "subscribe", "id": "s", "topics": ["wsdemo.echo"]})
        await recv(watcher)
        await send(client, '{"id": 2, "name": "echo", "text": "%s"}' % LONE)
        assert (await recv(client))["type"] == "accepted"
        raw = await asyncio.wait_for(client.recv(), TIMEOUT)
        assert LONE in raw and json.loads(raw) == {"type": "result", "id": 2, "data": {"echo": "\ud800"}}
        note = json.loads(await asyncio.wait_for(watcher.recv(), TIMEOUT))
        assert note["topic"] == "wsdemo.echo" and note["data"]["text"] == "\ud800"
        assert (await call(client, {"name": "echo", "text": "ok"}))[-1]["data"] == {"echo": "ok"}


def test_encoding_a_lone_surrogate_does_not_raise() -> None:
    value = {"text": "\ud800", "ok": "é", "nan": float("nan")}
    assert json.loads(dumps_text(value)) == {"text": "\ud800", "ok": "é", "nan": None}
    assert json.loads(dumps(value)) == json.loads(dumps_text(value))
    dumps_text(value).encode("utf-8")  # sendable as a text frame
    assert dumps_text({"ok": "é"}) == '{"ok":"é"}'  # the usual path is untouched


# -- many idle subscribers ----------------------------------------------------------------------


def idle_subscribers(service, sockets: int, patterns: int) -> list[Connection]:
    """Connections (no socket behind) subscribed to patterns no message matches."""
    connections = []
    for i in range(sockets):
        connection = Connection(service, None, Session.anonymous())
        service.connections.add(connection)
        topics = [f"nomatch{i}.*" if j % 3 else f"other.#.t{j}" if j % 2 else f"x.t{i}.{j}" for j in range(patterns)]
        connection.set_topics(topics)
        connections.append(connection)
    return connections


async def test_idle_subscribers_are_matched_once_per_topic_not_per_message(service, monkeypatch) -> None:
    # Without an index every completed message was matched against every pattern of every
    # socket (10,000 messages x 200 sockets here: 2,000,000 matchings, ~97 s); with it, each
    # distinct topic is matched once per socket, and the other notifications are a lookup.
    idle_subscribers(service, 200, 100)
    matched: list[str] = []
    original = Connection.subscribed

    def counting(self: Connection, topic: str) -> bool:
        matched.append(topic)
        return original(self, topic)

    monkeypatch.setattr(Connection, "subscribed", counting)
    messages = [Echo(text="x"), Pinged(value=1), Slow(delay=0, tag="t")]
    for i in range(10_000):
        service.notify(messages[i % 3], "result")
    assert len(matched) == 3 * 200  # three topics, two hundred sockets, once each
    service.connections.clear()


async def test_the_subscriber_index_follows_subscriptions(service) -> None:
    async with connect(service.url) as star, connect(service.url) as hash_, connect(service.url) as literal, \
            connect(service.url) as caller:
        for client, topics in ((star, ["wsdemo.*"]), (hash_, ["#"]), (literal, ["wsdemo.pinged"])):
            await send(client, {"type": "subscribe", "id": "s", "topics": topics})
            assert (await recv(client))["type"] == "subscribed"
        await call(caller, {"name": "echo", "text": "1"})  # caches wsdemo.echo: star and hash_
        await service.hub.execute(Pinged(value=1))  # caches wsdemo.pinged: all three
        assert (await recv(star))["topic"] == "wsdemo.echo"
        assert (await recv(hash_))["topic"] == "wsdemo.echo"
        for client in (star, hash_, literal):
            assert (await recv(client))["topic"] == "wsdemo.pinged"
        # A change of subscriptions is seen at once by the cached topics.
        await send(literal, {"type": "subscribe", "id": "s2", "topics": ["*.echo"]})
        await recv(literal)
        await send(star, {"type": "unsubscribe", "id": "u"})
        await recv(star)
        await call(caller, {"name": "echo", "text": "2"})
        assert (await recv(literal))["topic"] == "wsdemo.echo"
        assert (await recv(hash_))["topic"] == "wsdemo.echo"
        await send(star, {"type": "ping", "id": "p"})
        assert await recv(star) == {"type": "pong", "id": "p"}  # nothing for the unsubscribed
    # Closed sockets leave the index.
    for _ in range(100):
        if not service.connections:
            break
        await asyncio.sleep(0.01)
    await service.hub.execute(Pinged(value=2))
    assert not service.subscribers("wsdemo.pinged")


async def test_connections_beyond_max_connections_are_closed_with_1013() -> None:
    hub, service = await start(max_connections=2)
    try:
        async with connect(service.url) as a, connect(service.url) as b:
            async with connect(service.url) as refused:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(refused.recv(), TIMEOUT)
                assert refused.close_code == 1013
            for client in (a, b):
                assert (await call(client, {"name": "echo", "text": "ok"}))[-1]["type"] == "result"
        async with connect(service.url) as again:  # room again once sockets closed
            assert (await call(again, {"name": "echo", "text": "ok"}))[-1]["type"] == "result"
    finally:
        await hub.stop()

"""What a hostile or careless client must not be able to do to the server and its hub."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from bollydog.encoding import dumps, dumps_text
from tests.websocket.conftest import TIMEOUT, call, recv, send
from tests.websocket.handlers import FEEDBACK, SEEN

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

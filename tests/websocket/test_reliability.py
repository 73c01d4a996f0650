"""What a hostile or careless client must not be able to do to the server and its hub."""

from __future__ import annotations

from tests.websocket.conftest import call
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

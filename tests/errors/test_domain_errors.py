"""A domain error answers with its own mapping on every surface: HTTP, WebSocket, CLI, in-process.

``library.borrow`` of a title not on the shelf raises ``NotAvailable`` (``status_code = 409``,
``exit_code = 3``, field ``title``): tests/apps/libraryapp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect

from bollydog.bootstrap import build
from bollydog.errors import describe

from tests.naming.conftest import APPS, CONFIG
from libraryapp.errors import NotAvailable
from libraryapp.messages import Borrow

MESSAGE = "'hamlet' is not on the shelf"
BODY = {"error": "NotAvailable", "message": MESSAGE, "title": "hamlet"}


def _not_a_server_failure(records: list[logging.LogRecord]) -> None:
    """The refusal was logged, as one info line without traceback."""
    mine = [r for r in records if "NotAvailable" in r.getMessage()]
    assert mine, [r.getMessage() for r in records]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in mine)


async def test_in_process_execute_raises_the_class_itself():
    hub = build(CONFIG, entrypoints=False).hub
    async with hub:
        with pytest.raises(NotAvailable) as caught:
            await hub.execute(Borrow(title="hamlet"))
    assert caught.value.title == "hamlet" and str(caught.value) == MESSAGE
    info = describe(caught.value)
    assert (info.status, info.code, info.exit_code) == (409, "NotAvailable", 3)
    assert info.body() == BODY


async def test_http_answers_the_declared_status_and_fields(caplog):
    composition = build(CONFIG)
    http, _ = composition.entrypoints
    async with composition.hub:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            with caplog.at_level(logging.INFO, logger="bollydog"):
                refused = await client.post("/library/desk/borrow", json={"title": "hamlet"})
                assert refused.status_code == 409, refused.text
                assert refused.json() == BODY
                assert "x-bollydog-message-id" in refused.headers
                streamed = await client.post(
                    "/library/desk/borrow", json={"title": "hamlet"}, headers={"accept": "text/event-stream"}
                )
            event, data = streamed.text.strip().split("\n")
            assert event == "event: error"
            assert json.loads(data.removeprefix("data: ")) == {**BODY, "status": 409}
    # Logged once a request, by the hub, as for every entrypoint (HTTP does not log it again).
    _not_a_server_failure([r for r in caplog.records if r.name == "bollydog.hub"])
    assert len([r for r in caplog.records if "NotAvailable" in r.getMessage()]) == 2


async def test_websocket_error_frame_carries_the_code_status_and_fields(caplog):
    composition = build(CONFIG)
    _, ws = composition.entrypoints
    async with composition.hub:
        async with connect(ws.url) as socket:
            with caplog.at_level(logging.INFO, logger="bollydog"):
                await socket.send(json.dumps({"name": "library.borrow", "id": 7, "title": "hamlet"}))
                accepted = json.loads(await asyncio.wait_for(socket.recv(), 5))
                error = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert accepted["type"] == "accepted"
    assert error == {"type": "error", "id": 7, **BODY, "errors": [], "status": 409}
    _not_a_server_failure([r for r in caplog.records if r.name == "bollydog.hub"])


def test_cli_exits_with_the_declared_exit_code():
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    done = subprocess.run(
        [sys.executable, "-m", "bollydog.cli.main", "execute", "--config", str(CONFIG),
         "--message", "library.borrow", "--title=hamlet"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert f"error: NotAvailable: {MESSAGE}" in done.stderr
    assert "Traceback" not in done.stderr

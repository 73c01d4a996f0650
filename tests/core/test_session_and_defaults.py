"""Every entrypoint hands handlers a Session and, by default, a memory Protocol."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import httpx

from bollydog.bootstrap import build
from bollydog.entrypoint.http.app import HttpService
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.testing import as_user, running_hub

from tests.core.session_handlers import Remember, WhoAmI

HANDLERS = "tests.core.session_handlers"


async def test_a_bare_hub_gives_an_anonymous_session_shared_by_nested_handlers():
    async with HubService(apps=[AppService.create_from(domain="who", handlers=[HANDLERS])]) as hub:
        me = await hub.execute(WhoAmI(nested=True))
        queued = await (await hub.put_message(WhoAmI())).state
    assert me["username"] is None and me["uid"]
    assert me["inner"]["uid"] == me["uid"]  # one session for the message and what it dispatched
    assert queued["uid"] and queued["uid"] != me["uid"]  # each top-level message its own


async def test_running_hub_gives_a_session_and_as_user_names_it():
    async with running_hub(HANDLERS, domain="who") as hub:
        assert (await hub.execute(WhoAmI()))["username"] is None
        with as_user("ann"):
            assert (await hub.execute(WhoAmI(nested=True)))["inner"]["username"] == "ann"


async def test_http_gives_an_anonymous_session():
    hub = HubService(apps=[AppService.create_from(domain="who", handlers=[HANDLERS])])
    http = hub.add_entrypoint(HttpService(port=0))
    async with hub, httpx.AsyncClient(base_url=http.url) as client:
        reply = await client.get("/who/appservice/whoami")
    assert reply.status_code == 200, reply.text
    assert reply.json()["username"] is None and reply.json()["uid"]


def test_execute_runs_as_the_os_user():
    env = {**os.environ, "BOLLYDOG_HANDLERS": HANDLERS}
    done = subprocess.run(
        [sys.executable, "-m", "bollydog.cli.main", "execute", "--message", "handlers.whoami"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["username"] == getpass.getuser()


async def test_a_domain_without_persistence_gets_a_memory_protocol():
    async with HubService(apps=[AppService.create_from(domain="who", handlers=[HANDLERS])]) as hub:
        assert await hub.execute(Remember(key="k")) == "MemoryProtocol"
    composition = build({"who": {"handlers": [HANDLERS]}}, entrypoints=False)
    async with composition.hub as hub:
        assert await hub.execute(Remember(key="k")) == "MemoryProtocol"


async def test_config_less_handlers_get_a_memory_protocol(monkeypatch):
    from bollydog.settings import reload_settings

    monkeypatch.setenv("BOLLYDOG_HANDLERS", HANDLERS)
    reload_settings()
    try:
        async with build(None, entrypoints=False).hub as hub:
            assert await hub.execute(Remember(key="k")) == "MemoryProtocol"
    finally:
        monkeypatch.delenv("BOLLYDOG_HANDLERS")
        reload_settings()


def test_an_anonymous_session_is_a_plain_session():
    from bollydog.models.base import Session

    first, second = Session.anonymous(), Session.anonymous()
    assert first.uid != second.uid and first.username is None and first.data == {"anonymous": True}
    assert first == Session(uid=first.uid, data={"anonymous": True})
    assert Session.model_validate(first.model_dump()) == first
    first.data["cart"] = 1
    assert second.data == {"anonymous": True}  # its own dict
    assert Session.model_validate_json(first.model_dump_json()).data == {"anonymous": True, "cart": 1}

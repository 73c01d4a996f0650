"""The state service from the entrypoints: HTTP (JSON and SSE) and `bollydog execute`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from bollydog.entrypoint.http.app import HttpService
from bollydog.service.app import HubService
from bollydog.state.service import StateService

ROOT = Path(__file__).resolve().parents[2]


class DeviceSpec(BaseModel):
    temperature: float
    site: str = "main"


@pytest.fixture
async def http():
    app = StateService(domain="state", kinds={"device": "tests.state.test_entrypoints.DeviceSpec"})
    hub = HubService(apps=[app])
    server = hub.add_entrypoint(HttpService(port=0))
    async with hub:
        async with httpx.AsyncClient(base_url=f"{server.url}/state/stateservice", timeout=10) as client:
            yield client


async def test_http_put_get_list_delete(http):
    put = await http.post("/put", json={"kind": "device", "key": "d1", "labels": {"env": "prod"},
                                        "spec": {"temperature": 20}})
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["spec"] == {"temperature": 20.0, "site": "main"} and body["version"] > 0
    got = await http.get("/get", params={"kind": "device", "key": "d1"})
    assert got.json() == body
    listed = await http.get("/list", params={"selector": "env in (prod)"})
    assert [o["key"] for o in listed.json()["items"]] == ["d1"]
    stale = await http.post("/put", json={"kind": "device", "key": "d1", "spec": {"temperature": 1},
                                          "expected_version": body["version"] + 100})
    assert stale.status_code == 409 and stale.json()["error"] == "ConflictError"
    assert stale.json()["actual_version"] == body["version"]
    deleted = await http.post("/delete", json={"kind": "device", "key": "d1"})
    assert deleted.status_code == 200
    missing = await http.get("/get", params={"kind": "device", "key": "d1"})
    assert missing.status_code == 404 and missing.json()["error"] == "ObjectNotFoundError"


async def test_http_bad_input_is_a_precise_422(http):
    bad = await http.get("/list", params={"selector": "env in (prod"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "SelectorError" and bad.json()["position"] == 12
    spec = await http.post("/put", json={"kind": "device", "key": "d1", "spec": {"temperature": "hot"}})
    assert spec.status_code == 422 and spec.json()["errors"][0]["field"] == "spec.temperature"
    kind = await http.post("/put", json={"kind": "lamp", "key": "l1"})
    assert kind.status_code == 422 and "known kinds: device" in kind.json()["message"]
    label = await http.post("/put", json={"kind": "device", "key": "d1", "labels": {"-x": "y"},
                                          "spec": {"temperature": 1}})
    assert label.status_code == 422 and label.json()["errors"][0]["field"] == "labels"


async def test_http_watch_streams_as_sse(http):
    await http.post("/put", json={"kind": "device", "key": "d1", "labels": {"env": "prod"},
                                  "spec": {"temperature": 20}})
    async with http.stream("POST", "/watch", json={"selector": "env=prod", "timeout": 0.5},
                           headers={"accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        text = "".join([chunk async for chunk in response.aiter_text()])
    data = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    kinds = [d.get("type") for d in data if isinstance(d, dict)]
    assert "ADDED" in kinds and "BOOKMARK" in kinds, text


def _bollydog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("bollydog")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "bollydog.cli.main"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_cli_execute_against_a_sqlite_store(tmp_path):
    config = tmp_path / "state.yaml"
    config.write_text(
        "state:\n"
        "  app: !module bollydog.state.service.StateService\n"
        "  unit_of_work:\n"
        "    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork\n"
        "    url: sqlite+aiosqlite:///${BOLLYDOG_CONFIG_DIR}/state.db\n"
        "  protocol:\n"
        "    module: !module bollydog.state.sql.SqlStateProtocol\n"
    )
    put = _bollydog("execute", f"--config={config}", "--message=state.put", "--kind=device", "--key=d1",
                    '--labels={"env": "prod"}', '--spec={"temperature": 30}', cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    version = json.loads(put.stdout)["version"]
    listed = _bollydog("execute", f"--config={config}", "--message=state.list", "--selector=env=prod",
                       cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [o["key"] for o in json.loads(listed.stdout)["items"]] == ["d1"]  # a second process reads it
    conflict = _bollydog("execute", f"--config={config}", "--message=state.put", "--kind=device", "--key=d1",
                         "--expected_version=0", cwd=tmp_path)
    assert conflict.returncode == 3 and "ConflictError" in conflict.stderr
    assert f"the store has version {version}" in conflict.stderr
    bad = _bollydog("execute", f"--config={config}", "--message=state.list", "--selector=!", cwd=tmp_path)
    assert bad.returncode == 2 and "at position 1" in bad.stderr


def test_config_parts_are_checked(tmp_path):
    from bollydog.adapters.memory import MemoryProtocol, MemoryUnitOfWork
    from bollydog.adapters.sqlalchemy import SqlAlchemyUnitOfWork
    from bollydog.errors import ConfigError
    from bollydog.state.sql import SqlStateProtocol

    implied = StateService(unit_of_work=SqlAlchemyUnitOfWork(f"sqlite+aiosqlite:///{tmp_path / 's.db'}"))
    assert isinstance(implied.protocol, SqlStateProtocol)  # a unit_of_work section alone is enough
    with pytest.raises(ConfigError, match="MemoryProtocol is not a StateProtocol"):
        StateService(protocol=MemoryProtocol())
    with pytest.raises(ConfigError, match="MemoryUnitOfWork has no state protocol"):
        StateService(unit_of_work=MemoryUnitOfWork())
    with pytest.raises(ConfigError, match=r"state\.kinds\.device: .* is not a pydantic model class"):
        StateService(domain="state", kinds={"device": "bollydog.state.service.HANDLERS"})


async def test_websocket_watch_streams_partial_frames():
    from websockets.asyncio.client import connect

    from bollydog.entrypoint.websocket.app import SocketService

    hub = HubService(apps=[StateService(domain="state")])
    socket = hub.add_entrypoint(SocketService(port=0))
    async with hub:
        async with connect(socket.url) as ws:
            # From version 0: what was written before the watch subscribed comes from the log.
            await ws.send(json.dumps({"name": "state.watch", "id": 1, "selector": "env=prod", "timeout": 3,
                                      "limit": 2, "since_version": 0}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == "accepted"
            await ws.send(json.dumps({"name": "state.put", "id": 2, "kind": "device", "key": "d1",
                                      "labels": {"env": "prod"}}))
            await ws.send(json.dumps({"name": "state.put", "id": 3, "kind": "device", "key": "d2",
                                      "labels": {"env": "dev"}}))
            await ws.send(json.dumps({"name": "state.delete", "id": 4, "kind": "device", "key": "d1"}))
            frames = []
            while not any(f.get("id") == 1 and f["type"] in ("result", "error") for f in frames):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    partials = [(f["data"]["type"], f["data"].get("object", {}).get("key"))
                for f in frames if f.get("id") == 1 and f["type"] in ("partial", "result")]
    assert partials[:2] == [("ADDED", "d1"), ("DELETED", "d1")]
    assert partials[-1][0] == "BOOKMARK"

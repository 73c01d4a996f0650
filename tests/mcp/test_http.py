"""Streamable HTTP: both protocol eras, JWT auth like the HTTP entrypoint, mounting, stopping."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.mcp.app import McpService
from bollydog.errors import ConfigError
from tests.mcp.conftest import Keys
from tests.mcp.conftest import http_client, started

INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_tools_over_streamable_http_in_both_protocol_eras(mode: str, version: str) -> None:
    seen: list[str | None] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with started() as (_, service):
        assert service.url == f"http://127.0.0.1:{service.port}/mcp"
        async with http_client(service.url, mode) as client:
            assert client.protocol_version == version
            assert "tooldemo_echo" in {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("tooldemo_countdown", {"n": 2}, progress_callback=progress)
            assert result.structured_content == {"result": "liftoff"}
            failed = await client.call_tool("tooldemo_add", {"a": "x"})
            assert failed.is_error and failed.structured_content["errors"][0]["field"] == "a"
    assert [json.loads(m or "null") for m in seen] == [{"left": 2}, {"left": 1}, "liftoff"]


async def test_no_token_or_a_bad_token_is_a_401_with_a_json_body(keys: Keys, other_keys: Keys) -> None:
    async with started(public_key=keys.public_pem) as (_, service):
        async with httpx.AsyncClient(timeout=10) as http:
            missing = await http.post(service.url, json=INITIALIZE, headers=ACCEPT)
            assert missing.status_code == 401
            assert missing.json()["error"] == "AuthError" and missing.json()["reason"] == "missing"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            forged = await http.post(
                service.url, json=INITIALIZE,
                headers={**ACCEPT, "authorization": f"Bearer {other_keys.token(sub='eve')}"},
            )
            assert forged.status_code == 401 and forged.json()["reason"] == "invalid_signature"
        with pytest.raises(Exception):  # the SDK's client cannot even connect
            async with http_client(service.url, "legacy"):
                pass


async def test_a_valid_token_makes_its_subject_the_username(keys: Keys) -> None:
    async with started(public_key=keys.public_pem) as (_, service):
        for mode in ("legacy", "auto"):
            async with http_client(service.url, mode, token=keys.token(sub="ann")) as client:
                seen = (await client.call_tool("tooldemo_whoami", {})).structured_content
            assert seen["username"] == "ann" and seen["created_by"] == "ann"
    async with started(public_key=keys.public_pem, auth_required=False) as (_, service):
        async with http_client(service.url, "legacy") as client:  # no token: anonymous
            assert (await client.call_tool("tooldemo_whoami", {})).structured_content["username"] is None


async def test_an_mcp_session_belongs_to_the_user_who_opened_it(keys: Keys) -> None:
    async with started(public_key=keys.public_pem) as (_, service):
        async with httpx.AsyncClient(timeout=10) as http:
            opened = await http.post(
                service.url, json=INITIALIZE, headers={**ACCEPT, "authorization": f"Bearer {keys.token(sub='ann')}"}
            )
            assert opened.status_code == 200
            session_id = opened.headers["mcp-session-id"]
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            other = await http.post(
                service.url, json=listing,
                headers={**ACCEPT, "mcp-session-id": session_id, "authorization": f"Bearer {keys.token(sub='bob')}"},
            )
            assert other.status_code == 404


async def test_requests_for_another_host_are_refused_on_a_local_address() -> None:
    async with started() as (_, service):
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(service.url, json=INITIALIZE, headers={**ACCEPT, "host": "evil.example"})
    assert answer.status_code == 421


async def test_the_http_service_can_serve_mcp_at_a_path_with_its_own_auth(keys: Keys) -> None:
    http = HttpService(
        port=0, public_key=keys.public_pem, mcp_path="/mcp", exclude=["tooldemo.wipe"],
        router_mapping={"tooldemo.add": {"methods": ["GET"]}},
    )
    async with started(http) as _:
        token = keys.token(sub="ann")
        async with http_client(f"{http.url}/mcp", "legacy", token=token) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "tooldemo_wipe" not in tools and tools["tooldemo_add"].annotations.read_only_hint is True
            seen = (await client.call_tool("tooldemo_whoami", {})).structured_content
            assert seen["username"] == "ann"
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as plain:
            assert (await plain.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 401
            answer = await plain.get("/tooldemo/appservice/add", params={"a": 1, "b": 2},
                                     headers={"authorization": f"Bearer {token}"})
            assert answer.json() == 3  # the HTTP routes are still there


def test_mcp_path_must_not_take_an_existing_route() -> None:
    from bollydog.service.app import HubService
    from tests.mcp.conftest import demo_app

    hub = HubService(apps=[demo_app()])
    http = hub.add_entrypoint(HttpService(port=0, mcp_path="/openapi.json"))
    with pytest.raises(ConfigError, match="http.mcp_path: /openapi.json is taken or reserved"):
        http.build_app()


async def test_stop_answers_the_call_in_flight_then_ends_open_sessions_promptly() -> None:
    async with started(shutdown_grace=5) as (hub, service):
        async with http_client(service.url, "legacy") as client:
            await client.list_tools()  # the client checks results against the listed schemas
            call = asyncio.create_task(client.call_tool("tooldemo_pause", {"seconds": 0.3}))
            while len(service.tools.calls) < 1:
                await asyncio.sleep(0.01)
            endpoint = service._serving.http  # type: ignore[attr-defined]  (the ASGI app of /mcp)
            began = time.monotonic()
            await hub.stop()
            assert (await call).structured_content == {"result": 0.3}
            assert time.monotonic() - began < 2.5  # not the 5 s grace, not uvicorn's wait for streams
        # A request reaching the endpoint after its sessions ended: 503, a JSON-RPC error.
        gate = httpx.ASGITransport(app=endpoint)
        async with httpx.AsyncClient(transport=gate, base_url="http://127.0.0.1") as late:
            answer = await late.post("/mcp", json=INITIALIZE, headers=ACCEPT)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["data"] == {"error": "HubNotRunningError", "retryAfter": 1}


def test_options_come_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOLLYDOG_MCP_SERVICE_PORT", "9123")
    monkeypatch.setenv("BOLLYDOG_MCP_SERVICE_EXCLUDE", "bollydog.*, tooldemo.wipe")
    from_env = McpService()
    assert (from_env.settings.host, from_env.settings.port) == ("127.0.0.1", 9123)
    assert from_env.settings.exclude == ["bollydog.*", "tooldemo.wipe"]
    assert from_env.url == "http://127.0.0.1:9123/mcp"
    assert McpService(port=9000, transport="stdio").url == "stdio"
    monkeypatch.setenv("BOLLYDOG_MCP_SERVICE_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="mcp: invalid option .*port"):
        McpService()
    monkeypatch.delenv("BOLLYDOG_MCP_SERVICE_PORT")
    with pytest.raises(ConfigError, match="transport"):
        McpService(transport="carrier-pigeon")
    with pytest.raises(ConfigError, match="prot"):
        McpService(prot=1)


async def test_a_busy_port_is_a_config_error_naming_the_option() -> None:
    async with started() as (hub, service):
        other = McpService(port=service.port)
        other.hub = hub
        with pytest.raises(ConfigError, match=f"mcp: cannot listen on 127.0.0.1:{service.port}.*BOLLYDOG_MCP_SERVICE_PORT"):
            await other.on_start()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stateless_http_serves_every_request_on_its_own(mode: str) -> None:
    seen: list[str | None] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with started(stateless=True) as (_, service):
        async with http_client(service.url, mode) as client:
            result = await client.call_tool("tooldemo_countdown", {"n": 1}, progress_callback=progress)
    assert result.structured_content == {"result": "liftoff"} and len(seen) == 2

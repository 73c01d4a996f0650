"""One JWT block (``bollydog.entrypoint.kit.settings.JwtSettings``) and one authenticator for
HTTP, WebSocket and MCP: the same option names, the same refusals, the same sessions."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.mcp.app import McpService
from bollydog.entrypoint.websocket.app import SocketService
from bollydog.errors import ConfigError
from tests.kit.conftest import serving
from tests.mcp.conftest import http_client

ENTRYPOINTS = [
    (HttpService, "BOLLYDOG_HTTP_SERVICE_"),
    (SocketService, "BOLLYDOG_WS_SERVICE_"),
    (McpService, "BOLLYDOG_MCP_SERVICE_"),
]


@pytest.mark.parametrize(("service", "prefix"), ENTRYPOINTS)
@pytest.mark.parametrize("algorithms", [["HS256"], "HS512", ["RS256", "none"]])
def test_symmetric_and_none_algorithms_are_refused_by_every_entrypoint(
    service: Any, prefix: str, algorithms: Any
) -> None:
    with pytest.raises(ConfigError, match="only asymmetric algorithms"):
        service(jwt_algorithms=algorithms)


@pytest.mark.parametrize(("service", "prefix"), ENTRYPOINTS)
def test_the_jwt_options_read_the_same_from_every_environment(
    service: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{prefix}JWT_ALGORITHMS", "RS256, ES256")
    monkeypatch.setenv(f"{prefix}JWT_AUDIENCE", "shop")
    monkeypatch.setenv(f"{prefix}JWT_LEEWAY", "5")
    monkeypatch.setenv(f"{prefix}AUTH_REQUIRED", "false")
    monkeypatch.setenv(f"{prefix}PUBLIC_KEY", "")  # empty: not set, auth stays off
    settings = service().settings
    assert settings.jwt_algorithms == ["RS256", "ES256"]
    assert (settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway) == ("shop", None, 5.0)
    assert settings.auth_required is False and settings.public_key is None
    monkeypatch.setenv(f"{prefix}JWT_ALGORITHMS", "HS256")
    with pytest.raises(ConfigError, match=f"{prefix}"):
        service()


@pytest.mark.parametrize(("service", "prefix"), ENTRYPOINTS)
def test_an_unknown_option_is_a_config_error_everywhere(service: Any, prefix: str) -> None:
    with pytest.raises(ConfigError, match="jwt_algorithm"):
        service(jwt_algorithm=["RS256"])


async def test_an_anonymous_request_gets_the_same_session_everywhere() -> None:
    async with serving() as served:
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            over_http = (await client.get(served.path("whoami"))).json()
        async with connect(served.ws.url) as ws:
            await ws.send(json.dumps({"name": "kitdemo.whoami", "id": 1}))
            frames = [json.loads(await ws.recv()) for _ in range(2)]
            over_ws = frames[1]["data"]
        async with http_client(served.mcp.url, "legacy") as mcp:
            over_mcp = (await mcp.call_tool("kitdemo_whoami", {})).structured_content
    anonymous = {"username": None, "data": {"anonymous": True}}
    assert over_http == over_ws == over_mcp == anonymous


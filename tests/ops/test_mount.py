"""bollydog mounted into a FastAPI application, served by one real uvicorn (no second server)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from fastapi import FastAPI, Request

from bollydog.asgi import HubContext, asgi_app
from bollydog.errors import ConfigError, HubNotRunningError
from tests.ops.conftest import HANDLERS, uvicorn_serving
from tests.ops.ops_handlers import Add, WhoAmI

CONFIG = {"shop": {"handlers": [HANDLERS]}}
MCP_INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def host_app() -> tuple[FastAPI, object]:
    """A legacy FastAPI app: its own route and middleware, bollydog mounted at /bd."""
    bolly = asgi_app(CONFIG)
    app = FastAPI(lifespan=bolly.lifespan)
    app.add_middleware(HubContext, hub=bolly.hub)

    @app.middleware("http")
    async def stamp(request: Request, call_next):  # the host's middleware
        response = await call_next(request)
        response.headers["x-host"] = "legacy"
        return response

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/legacy/add")
    async def legacy_add(a: int, b: int) -> dict[str, object]:
        from bollydog.globals import hub

        total = await bolly.hub.execute(Add(a=a, b=b))
        inside = await hub.execute(WhoAmI())  # the context-local proxy, via HubContext
        return {"total": total, "inside": inside}

    app.mount("/bd", bolly)
    return app, bolly


async def test_a_fastapi_app_serves_bollydog_under_a_prefix_in_its_own_lifespan() -> None:
    app, bolly = host_app()
    hub = bolly.hub
    assert not hub.started  # nothing runs before the host starts
    async with uvicorn_serving(app) as url:
        assert hub.accepting  # started by the host's lifespan
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            hello = await client.get("/hello")
            assert hello.json() == {"hello": "world"} and hello.headers["x-host"] == "legacy"

            added = await client.post("/bd/shop/appservice/add", json={"a": 2, "b": 3})
            assert added.status_code == 200, added.text
            assert added.json() == 5 and added.headers["x-host"] == "legacy"  # host middleware too
            assert added.headers["traceparent"].startswith("00-")
            bad = await client.post("/bd/shop/appservice/add", json={"a": "x", "b": 3})
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "a"

            legacy = await client.get("/legacy/add", params={"a": 4, "b": 5})
            assert legacy.json() == {
                "total": 9, "inside": {"message": "WhoAmI", "domain": "shop", "hub_running": True}
            }

            ready = await client.get("/bd/readyz")
            assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            assert (await client.get("/bd/livez")).json() == {"status": "alive"}
            paths = (await client.get("/bd/openapi.json")).json()["paths"]
            assert "/shop/appservice/add" in paths
            assert (await client.get("/nope")).status_code == 404  # the host's own 404

            mcp = await client.post(
                "/bd/mcp", json=MCP_INIT,
                headers={"accept": "application/json, text/event-stream", "content-type": "application/json"},
            )
            assert mcp.status_code == 200, mcp.text
            assert "serverInfo" in mcp.text

        ws_url = url.replace("http://", "ws://") + "/bd/ws"
        async with websockets.connect(ws_url) as socket:
            await socket.send(json.dumps({"name": "shop.add", "id": 7, "a": 20, "b": 22}))
            frames = [json.loads(await socket.recv()) for _ in range(2)]
        assert [f["type"] for f in frames] == ["accepted", "result"]
        assert frames[1] == {"type": "result", "id": 7, "data": 42}
    # Stopped with the host (its lifespan's shutdown): apps and entrypoints too, work refused.
    assert hub.should_stop and not hub.accepting
    assert all(s.should_stop for s in [*hub.apps.values(), *hub.entrypoints, hub.transport])
    with pytest.raises(HubNotRunningError):
        await hub.execute(Add(a=1, b=1))


async def test_requests_before_the_host_started_the_hub_are_answered_503() -> None:
    bolly = asgi_app(CONFIG)
    transport = httpx.ASGITransport(app=bolly)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/shop/appservice/add", json={"a": 1, "b": 2})
    assert answer.status_code == 503 and answer.json()["error"] == "HubNotRunningError"
    assert "lifespan" in answer.json()["message"]


async def test_mounted_without_a_host_the_app_runs_its_own_lifespan() -> None:
    bolly = asgi_app(CONFIG, mcp=False)
    async with uvicorn_serving(bolly) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/shop/appservice/add", json={"a": 1, "b": 1})).json() == 2
            assert (await client.post("/mcp", json=MCP_INIT)).status_code == 404  # mcp=False
    assert bolly.hub.should_stop and all(e.should_stop for e in bolly.hub.entrypoints)


def test_one_source_of_messages_and_a_section_that_cannot_be_mounted() -> None:
    from bollydog.models.service import AppService

    with pytest.raises(ConfigError, match="one of config, hub or apps"):
        asgi_app(CONFIG, apps=[AppService(domain="shop", handlers=[HANDLERS])])
    with pytest.raises(ConfigError, match="transport stdio cannot be mounted"):
        asgi_app({**CONFIG, "mcp": {"app": "bollydog.entrypoint.mcp.app.McpService", "transport": "stdio"}})


async def test_a_hub_built_in_code_is_mounted_with_http_and_websocket() -> None:
    from bollydog.models.service import AppService

    bolly = asgi_app(apps=[AppService(domain="shop", handlers=[HANDLERS])], mcp=False)
    async with bolly.lifespan():
        transport = httpx.ASGITransport(app=bolly)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/shop/appservice/add", json={"a": 5, "b": 5})).json() == 10
    assert {type(e).__name__ for e in bolly.hub.entrypoints} == {"HttpService", "SocketService"}


async def test_urls_bollydog_answers_under_a_mount_carry_the_prefix() -> None:
    """Location of a qos=0 message, the OpenAPI servers entry and the 404 hint: below the
    mount point (the ASGI root_path), so a client can follow them as given."""
    bolly = asgi_app(CONFIG, mcp=False)
    app = FastAPI(lifespan=bolly.lifespan)
    app.mount("/bollydog", bolly)
    async with uvicorn_serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            accepted = await client.post("/bollydog/shop/appservice/add", json={"a": 1, "b": 2, "qos": 0})
            assert accepted.status_code == 202, accepted.text
            location = accepted.headers["location"]
            assert location == f"/bollydog/_bollydog/messages/{accepted.json()['iid']}"
            assert accepted.json()["location"] == location
            for _ in range(100):
                outcome = (await client.get(location)).json()
                if outcome["status"] != "pending":
                    break
                await asyncio.sleep(0.01)
            assert outcome["status"] == "done" and outcome["result"] == 3

            document = (await client.get("/bollydog/openapi.json")).json()
            assert document["servers"] == [{"url": "/bollydog"}]
            assert "/shop/appservice/add" in document["paths"]  # paths are below the server URL

            missing = await client.get("/bollydog/shop/appservice/nothing")
            assert missing.status_code == 404
            assert "see /bollydog/openapi.json" in missing.json()["message"]


async def test_served_on_its_own_the_urls_have_no_prefix() -> None:
    bolly = asgi_app(CONFIG, mcp=False)
    async with uvicorn_serving(bolly) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            accepted = await client.post("/shop/appservice/add", json={"a": 1, "b": 2, "qos": 0})
            assert accepted.headers["location"] == f"/_bollydog/messages/{accepted.json()['iid']}"
            assert "servers" not in (await client.get("/openapi.json")).json()
            assert "see /openapi.json" in (await client.get("/nothing")).json()["message"]

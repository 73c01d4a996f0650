"""Server-sent events: partial results of async-generator handlers, then the result."""

import json

import pytest

from bollydog.errors import INTERNAL_MESSAGE

pytestmark = pytest.mark.asyncio(loop_scope="module")

SSE = {"accept": "text/event-stream"}


def parse(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_partials_then_result(client):
    async with client.stream("GET", "/demo/svc/progress", params={"steps": "2"}, headers=SSE) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-bollydog-message-id" in r.headers and "traceparent" in r.headers
        text = "".join([chunk async for chunk in r.aiter_text()])
    assert parse(text) == [
        ("partial", {"step": 0}),
        ("partial", {"step": 1}),
        ("partial", {"done": 2}),
        ("result", {"done": 2}),
    ]


async def test_failure_becomes_an_error_event(client):
    r = await client.get("/demo/svc/progress", params={"steps": "3", "fail_at": "1"}, headers=SSE)
    events = parse(r.text)
    assert events[0] == ("partial", {"step": 0})
    kind, body = events[-1]
    assert kind == "error"
    assert body["error"] == "RuntimeError" and body["status"] == 500 and body["message"] == INTERNAL_MESSAGE


async def test_plain_handler_streams_just_the_result(client):
    r = await client.get("/demo/svc/ping", headers=SSE)
    assert parse(r.text) == [("result", "pong")]


async def test_validation_errors_are_plain_json(client):
    r = await client.get("/demo/svc/progress", params={"steps": "x"}, headers=SSE)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"


async def test_without_accept_header_the_result_is_json(client):
    r = await client.get("/demo/svc/progress", params={"steps": "2"})
    assert r.json() == {"done": 2}


async def test_the_documented_stream_is_what_the_example_sends(monkeypatch, tmp_path):
    """docs/http.md's SSE example, event for event, against example/config.yaml's placeorder."""
    import re
    from pathlib import Path

    import httpx

    from bollydog.bootstrap import build
    from bollydog.entrypoint.http.app import HttpService

    root = Path(__file__).parents[2]
    page = (root / "docs/http.md").read_text()
    shown = parse(re.search(r"## Streaming \(SSE\).*?```text\n(.*?)```", page, re.S).group(1).replace("...", ""))
    for name, value in {
        "BOLLYDOG_HTTP_SERVICE_PORT": "0", "BOLLYDOG_WS_SERVICE_PORT": "0",
        "BOLLYDOG_EXAMPLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/example.db",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(root))
    hub = build(str(root / "example/config.yaml")).hub
    http = next(e for e in hub.entrypoints if isinstance(e, HttpService))
    order = {"customer": "bob", "lines": [{"sku": "apple", "quantity": 2}]}
    async with hub:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            r = await client.post("/example/exampleservice/placeorder", json=order, headers=SSE)
    sent = parse(r.text)
    assert [(kind, sorted(data)) for kind, data in sent] == [(kind, sorted(data)) for kind, data in shown]
    assert [data["status"] for _, data in sent] == [data["status"] for _, data in shown]
    assert sent[-2][1] == sent[-1][1]  # the last value yielded: a partial, then the result

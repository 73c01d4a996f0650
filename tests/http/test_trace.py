"""W3C traceparent in and out, and the message id header."""

import pytest

from bollydog.context import parse_traceparent

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_incoming_traceparent_joins_the_trace(client):
    r = await client.get(
        "/demo/svc/echo", params={"text": "t"}, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["trace_id"] == TRACE and body["parent_span_id"] == PARENT
    trace_id, span_id = parse_traceparent(r.headers["traceparent"])
    assert trace_id == TRACE and span_id != PARENT
    assert len(r.headers["x-bollydog-message-id"]) == 32


async def test_without_traceparent_a_new_trace_starts(client):
    r1 = await client.get("/demo/svc/echo", params={"text": "t"})
    r2 = await client.get("/demo/svc/echo", params={"text": "t"})
    assert r1.json()["trace_id"] != r2.json()["trace_id"]
    assert r1.json()["parent_span_id"] is None
    assert parse_traceparent(r1.headers["traceparent"])[0] == r1.json()["trace_id"]
    assert r1.headers["x-bollydog-message-id"] != r2.headers["x-bollydog-message-id"]


@pytest.mark.parametrize("header", ["garbage", f"00-{'0' * 32}-{PARENT}-01", f"ff-{TRACE}-{PARENT}-01"])
async def test_invalid_traceparent_is_ignored(client, header):
    r = await client.get("/demo/svc/echo", params={"text": "t"}, headers={"traceparent": header})
    assert r.status_code == 200
    assert r.json()["trace_id"] != TRACE and r.json()["parent_span_id"] is None


async def test_trace_headers_on_handler_errors(client):
    r = await client.get("/demo/svc/fail", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert r.status_code == 500
    assert parse_traceparent(r.headers["traceparent"])[0] == TRACE


async def test_remote_parent_does_not_leak_between_requests(client):
    await client.get("/demo/svc/echo", params={"text": "t"}, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    r = await client.get("/demo/svc/echo", params={"text": "t"})
    assert r.json()["trace_id"] != TRACE

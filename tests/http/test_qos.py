"""Fire-and-forget (qos=0) with outcomes fetched later, debounce, rate limits."""

import asyncio

import pytest

import http_sample_app

from conftest import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _outcome(client, location, *, until="pending"):
    for _ in range(100):
        body = (await client.get(location)).json()
        if body["status"] != until:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"still {until}: {body}")


async def test_qos0_query_param_returns_202_and_outcome(client):
    r = await client.get("/demo/svc/add", params={"a": 1, "b": 2, "qos": "0"})
    assert r.status_code == 405  # add is POST-only in this server
    r = await client.post("/demo/svc/add?qos=0", json={"a": 1, "b": 2})
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "accepted" and r.headers["location"] == body["location"]
    assert r.headers["x-bollydog-message-id"] == body["iid"]
    outcome = await _outcome(client, body["location"])
    assert outcome["status"] == "done" and outcome["result"] == 3 and outcome["iid"] == body["iid"]


async def test_qos0_header_and_pending_then_failed(client):
    r = await client.get("/demo/svc/slow", params={"delay": "0.1"}, headers={"x-bollydog-qos": "0"})
    assert r.status_code == 202
    pending = (await client.get(r.headers["location"])).json()
    assert pending["status"] == "pending"
    assert (await _outcome(client, r.headers["location"]))["result"] == "slept"
    r = await client.get("/demo/svc/fail", headers={"x-bollydog-qos": "0"})
    outcome = await _outcome(client, r.headers["location"])
    assert outcome["status"] == "failed" and outcome["error"] == "ValueError"


async def test_unknown_outcome_404(client):
    r = await client.get("/_bollydog/messages/" + "0" * 32)
    assert r.status_code == 404 and r.json()["error"] == "NotFound"


async def test_invalid_qos_is_422(client):
    r = await client.get("/demo/svc/ping", headers={"x-bollydog-qos": "7"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "x-bollydog-qos"  # the header named
    r = await client.get("/demo/svc/ping", params={"qos": "7"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "qos"


async def test_outcomes_are_bounded():
    async with serve(outcomes_max=2) as (_, http, client):
        locations = [
            (await client.get("/demo/svc/ping", params={"qos": "0"})).headers["location"] for _ in range(3)
        ]
        await asyncio.sleep(0.05)
        assert len(http.outcomes) == 2
        assert (await client.get(locations[0])).status_code == 404
        assert (await client.get(locations[2])).status_code == 200


async def test_debounce_shares_one_execution(client):
    http_sample_app.CALLS.clear()
    requests = [client.get("/demo/svc/tally", params={"key": "k1"}) for _ in range(4)]
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 4
    assert {r.json() for r in responses} == {1}
    assert http_sample_app.CALLS["k1"] == 1
    assert len({r.headers["x-bollydog-message-id"] for r in responses}) == 1
    assert sum(r.headers.get("x-bollydog-debounced") == "true" for r in responses) == 3
    other = await client.get("/demo/svc/tally", params={"key": "k2"})
    assert other.json() == 1 and http_sample_app.CALLS["k2"] == 1


async def test_debounce_window_expires(client):
    http_sample_app.CALLS.clear()
    assert (await client.get("/demo/svc/tally", params={"key": "w"})).json() == 1
    await asyncio.sleep(0.5)
    assert (await client.get("/demo/svc/tally", params={"key": "w"})).json() == 2


async def test_rate_limit_429_with_retry_after(client):
    statuses = []
    for _ in range(4):
        r = await client.get("/demo/svc/slow", params={"delay": "0"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"] == "RateLimitedError"
    assert statuses[:2] == [200, 200] and 429 in statuses
    await asyncio.sleep(0.6)
    assert (await client.get("/demo/svc/slow", params={"delay": "0"})).status_code == 200

"""URL scheme, input reading, methods, aliases, include/exclude."""

import pytest

from conftest import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")



async def test_get_query_params_are_coerced(client):
    r = await client.get("/demo/svc/echo", params={"text": "ab", "times": "3"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["text"] == "ababab"
    assert body["anonymous"] is True and body["user"] is None


async def test_post_json_body(client):
    r = await client.post("/demo/svc/echo", json={"text": "x", "times": 2})
    assert r.status_code == 200 and r.json()["text"] == "xx"


async def test_post_form_body(client):
    r = await client.post("/demo/svc/echo", data={"text": "f", "times": "2"})
    assert r.status_code == 200 and r.json()["text"] == "ff"


async def test_post_empty_body_uses_defaults(client):
    r = await client.post("/demo/svc/progress")
    assert r.status_code == 200 and r.json() == {"done": 3}


async def test_complex_fields_as_json_in_query_and_body(client):
    items = '[{"sku":"a","quantity":2},{"sku":"b","quantity":5}]'
    r = await client.get("/demo/svc/basket", params={"items": items, "tags": '{"k":"v"}'})
    assert r.status_code == 200 and r.json() == 7
    r = await client.post("/demo/svc/basket", json={"items": [{"sku": "a", "quantity": 1}]})
    assert r.status_code == 200 and r.json() == 1


async def test_builtin_commands_are_served(client):
    r = await client.get("/bollydog/bollydogservice/taskcount")
    assert r.status_code == 200 and r.json() == {"running": 0, "queued": 0}


async def test_router_mapping_methods_and_aliases(client):
    for path in ("/demo/svc/ping", "/ping", "/health/ping"):
        r = await client.get(path)
        assert r.status_code == 200 and r.json() == "pong", path
    r = await client.post("/ping")
    assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowed"
    r = await client.get("/demo/svc/add", params={"a": 1, "b": 2})
    assert r.status_code == 405
    r = await client.post("/demo/svc/add", json={"a": 1, "b": 2})
    assert r.status_code == 200 and r.json() == 3


async def test_unknown_route_is_json_404(client):
    for path in ("/demo/svc/nothing", "/nope", "/demo/other/echo"):
        r = await client.get(path)
        assert r.status_code == 404
        assert r.json()["error"] == "NotFound"


async def test_events_are_not_served(client):
    r = await client.get("/demo/svc/item")
    assert r.status_code == 404


async def test_include_exclude():
    async with serve(include=["demo.*"], exclude=["demo.fail", "demo.s*"]) as (_, http, client):
        assert (await client.get("/demo/svc/ping")).status_code == 200
        assert (await client.get("/demo/svc/fail")).status_code == 404
        assert (await client.get("/demo/svc/slow")).status_code == 404
        assert (await client.get("/bollydog/bollydogservice/taskcount")).status_code == 404
        served = {spec.key for spec in http.routes}
        assert "demo.echo" in served and "demo.fail" not in served


async def test_head_is_refused_unless_the_route_lists_it(client):
    import http_sample_app

    before = http_sample_app.CALLS.get("head", 0)
    r = await client.head("/demo/svc/tally", params={"key": "head"})
    assert r.status_code == 405, r.status_code
    assert r.headers["allow"] == "GET, POST"  # exactly the route's methods, in their order
    r = await client.post("/ping")
    assert r.headers["allow"] == "GET"
    assert http_sample_app.CALLS.get("head", 0) == before  # the command did not run


async def test_head_listed_in_methods_runs_the_command():
    import http_sample_app

    mapping = {"demo.tally": {"methods": ["get", "HEAD"]}}
    async with serve(router_mapping=mapping) as (_, http, client):
        before = http_sample_app.CALLS.get("listed", 0)
        r = await client.head("/demo/svc/tally", params={"key": "listed"})
        assert r.status_code == 200 and r.content == b""
        assert http_sample_app.CALLS["listed"] == before + 1
        r = await client.post("/demo/svc/tally", json={"key": "listed"})
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        operations = (await client.get("/openapi.json")).json()["paths"]["/demo/svc/tally"]
        assert set(operations) == {"get", "head"}
        assert "key" in [p["name"] for p in operations["head"]["parameters"]]
        assert "content" not in operations["head"]["responses"]["200"]  # HEAD answers no body


async def test_a_trailing_slash_is_a_json_404_naming_the_route(client):
    r = await client.get("/demo/svc/ping/", follow_redirects=False)
    assert r.status_code == 404, (r.status_code, r.headers)
    body = r.json()
    assert body["error"] == "NotFound" and "/demo/svc/ping" in body["message"]
    assert "without the trailing slash" in body["message"]
    r = await client.get("/demo/svc/nothing/", follow_redirects=False)
    assert r.status_code == 404 and "trailing slash" not in r.json()["message"]

"""The request path's shortcuts give what Starlette's general path gives: a message route found
by its path without the router, query strings read as ``request.query_params`` reads them, a
result's headers built as bytes."""

import random

import pytest
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import Router

from bollydog.entrypoint.http.endpoint import _multi_dict, message_headers, query_fields, raw_message_headers
from bollydog.entrypoint.http.responses import JSON, ResultResponse
from bollydog.models.base import Command
from conftest import serve


def starlette_fields(query: bytes) -> dict:
    return _multi_dict(QueryParams(query).multi_items())


@pytest.mark.parametrize("query", [
    b"a=1&b=2", b"a=1&a=2&a=3", b"a", b"a=", b"=x", b"a=b=c", b"&&a=1&", b"a=1;b=2",
    b"q=hello+world", b"q=%E2%9C%93&r=%zz", b"a=%2B&a=+", b"x=\xe9", b"name=&name=two",
])
def test_query_fields_read_what_starlette_reads(query):
    # The fast split (no escapes) and parse_qsl (escapes) both give Starlette's query_params.
    assert query_fields(query) == starlette_fields(query)


def test_query_fields_agree_with_starlette_on_random_strings():
    rng = random.Random(11)
    alphabet = "ab=&;+%2E1 x"
    for _ in range(2000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12))).encode()
        assert query_fields(query) == starlette_fields(query), query


class Sum(Command):
    a: int
    b: int


def test_a_result_response_sends_what_a_response_with_a_header_mapping_sends():
    message = Sum.from_input({"a": "1", "b": "2"}, strings=True)
    fast = ResultResponse(b"3", raw_message_headers(message))
    general = Response(b"3", 200, message_headers(message), JSON)
    assert (fast.status_code, fast.raw_headers, fast.body) == (general.status_code, general.raw_headers, general.body)


async def test_a_message_route_is_answered_without_the_router_and_the_rest_through_it(monkeypatch):
    routed: list[str] = []
    call = Router.__call__

    async def counting(self, scope, receive, send):
        routed.append(scope["path"])
        await call(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", counting)
    async with serve(router_mapping={"demo.ping": {"methods": ["GET"], "aliases": ["/ping"]}}) as (_, http, client):
        assert (await client.get("/demo/svc/echo", params={"text": "a"})).json()["text"] == "a"
        assert (await client.get("/ping")).status_code == 200
        assert routed == []
        assert (await client.post("/ping")).status_code == 405  # not its method: the router answers
        assert (await client.get("/ping/")).status_code == 404
        assert routed == ["/ping", "/ping/"]
        assert set(http._direct) >= {"/demo/svc/echo", "/demo/svc/ping", "/ping"}


async def test_a_registry_change_serves_its_routes_from_the_next_request():
    async with serve() as (hub, http, client):
        path = "/demo/svc/echo"
        assert (await client.get(path, params={"text": "c"})).status_code == 200
        http.settings.exclude = ["demo.echo"]
        http.registry_changed()
        assert path not in http._direct
        assert (await client.get(path, params={"text": "c"})).status_code == 404

"""What fuzzing the OpenAPI document found, pinned: input the document forbids is a 422."""

from __future__ import annotations

import httpx

from tests.reliability.conftest import serving


async def test_a_bad_qos_header_is_refused_even_when_a_field_gives_qos() -> None:
    async with serving() as served:
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            reply = await client.post(
                served.path("echo"), params={"qos": 2}, json={"text": "hi"}, headers={"x-bollydog-qos": "fast"}
            )
            assert reply.status_code == 422
            assert [e["field"] for e in reply.json()["errors"]] == ["x-bollydog-qos"]
            ok = await client.post(served.path("echo"), json={"text": "hi"}, headers={"x-bollydog-qos": "1"})
            assert ok.status_code == 200 and ok.json() == {"echo": "hi"}


async def test_an_integer_field_given_a_json_boolean_is_refused() -> None:
    async with serving() as served:
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            for body in ({"text": "hi", "times": True}, {"text": "hi", "qos": True}):
                reply = await client.post(served.path("echo"), json=body)
                assert reply.status_code == 422, body
                (error,) = reply.json()["errors"]
                assert error["field"] in body and "boolean" in error["message"]
            assert (await client.post(served.path("echo"), json={"text": "a", "times": 2})).json() == {"echo": "aa"}

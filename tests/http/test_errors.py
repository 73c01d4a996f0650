"""Error model: JSON bodies with real status codes, never a bare 500 for bad input."""

import asyncio
import json

import pytest

from bollydog.errors import INTERNAL_MESSAGE

from conftest import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")



async def test_missing_and_invalid_fields_422(client):
    r = await client.get("/demo/svc/echo", params={"times": "many"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "InvalidMessageError"
    fields = {e["field"]: e for e in body["errors"]}
    assert fields["text"]["type"] == "missing"
    assert fields["times"]["type"] == "int_parsing"
    assert all(set(e) == {"field", "message", "type"} for e in body["errors"])


async def test_unknown_field_422(client):
    r = await client.post("/demo/svc/echo", json={"text": "a", "colour": "red"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "colour"


async def test_nested_field_errors_are_dotted(client):
    r = await client.post("/demo/svc/basket", json={"items": [{"sku": "a", "quantity": 0}]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "items.0.quantity"


@pytest.mark.parametrize("field", ["iid", "trace_id", "span_id", "parent_span_id", "created_by", "created_time"])
async def test_reserved_fields_are_refused(client, field):
    r = await client.get("/demo/svc/echo", params={"text": "a", field: "0" * 32})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": field, "message": "reserved field, cannot be set by a client", "type": "reserved"}
    ]


async def test_client_settable_delivery_fields(client):
    r = await client.get("/demo/svc/echo", params={"text": "a", "priority": "5"})
    assert r.status_code == 200 and r.json()["priority"] == 5


async def test_malformed_json_400(client):
    r = await client.post("/demo/svc/echo", content=b'{"text": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "MalformedJSON"
    r = await client.post("/demo/svc/echo", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_json_body_must_be_an_object(client):
    r = await client.post("/demo/svc/echo", json=["text"])
    assert r.status_code == 400 and "JSON object" in r.json()["message"]


async def test_unsupported_media_type_415(client):
    r = await client.post("/demo/svc/echo", content=b"text=a", headers={"content-type": "text/plain"})
    assert r.status_code == 415


async def test_field_in_query_and_body_400(client):
    r = await client.post("/demo/svc/echo?text=a", json={"text": "b"})
    assert r.status_code == 400 and r.json()["error"] == "DuplicateField"


async def test_body_too_large_413(client):
    r = await client.post("/demo/svc/echo", json={"text": "x" * (1 << 21)})
    assert r.status_code == 413


async def test_handler_failure_500_without_traceback(client):
    r = await client.get("/demo/svc/fail")
    assert r.status_code == 500
    # An unmapped error's text is for the log (it may hold SQL, paths, parameters): the
    # client gets its type and where to look.
    assert r.json() == {"error": "ValueError", "message": INTERNAL_MESSAGE}
    assert "x-bollydog-message-id" in r.headers


async def test_an_unmapped_error_shows_its_text_only_with_debug() -> None:
    from bollydog.entrypoint.http.responses import error_response

    hidden = json.loads(bytes(error_response(ValueError("password=hunter2"), quiet=True).body))
    assert hidden == {"error": "ValueError", "message": INTERNAL_MESSAGE}
    shown = json.loads(bytes(error_response(ValueError("password=hunter2"), debug=True, quiet=True).body))
    assert shown["message"] == "password=hunter2" and shown["traceback"]
    mapped = json.loads(bytes(error_response(LookupError("x"), quiet=True).body))
    assert mapped["message"] == INTERNAL_MESSAGE  # a builtin has no mapping either


async def test_handler_failure_with_debug_has_traceback():
    async with serve(debug=True) as (_, _, client):
        r = await client.get("/demo/svc/fail")
        assert r.status_code == 500
        body = r.json()
        assert body["error"] == "ValueError"
        assert any("boom" in line for line in body["traceback"])


async def test_timeout_504(client):
    r = await client.get("/demo/svc/slow", params={"delay": "1", "expire_time": "0.05"})
    assert r.status_code == 504
    assert r.json()["error"] == "HandlerTimeoutError"
    # The canonical name, as every surface prints it.
    assert r.json()["message"].startswith(f"demo.slow ({r.headers['x-bollydog-message-id']}) did not finish")


async def test_invalid_fields_name_the_message_canonically(client):
    r = await client.post("/demo/svc/add", json={"a": 1})
    assert r.status_code == 422
    assert r.json()["message"] == "invalid demo.add: b: Field required"
    r = await client.post("/demo/svc/add", json={"a": 1, "b": 2, "iid": "x"})  # the reserved check
    assert r.json()["message"].startswith("invalid demo.add: iid: reserved field")


async def test_queue_full_503_with_retry_after():
    async with serve({"queue_max_size": 1, "concurrency": 1}) as (_, _, client):
        statuses = []
        for _ in range(4):
            r = await client.get("/demo/svc/slow", params={"delay": "0.3", "qos": "0"})
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1"
                assert r.json()["error"] == "QueueFullError"
        assert 202 in statuses and 503 in statuses


async def test_hub_not_accepting_503(server, monkeypatch):
    hub, _, client = server
    monkeypatch.setattr(hub, "_accepting", False)
    r = await client.get("/demo/svc/ping")
    assert r.status_code == 503
    assert r.json()["error"] == "HubNotRunningError"
    assert "retry-after" in r.headers
    r = await client.get("/demo/svc/ping", params={"qos": "0"})
    assert r.status_code == 503


async def test_deeply_nested_json_400_not_500(client):
    body = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = await client.post("/demo/svc/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "MalformedJSON"


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=xyz"],
)
async def test_malformed_multipart_400_not_500(client, content_type):
    r = await client.post("/demo/svc/echo", content=b"garbage", headers={"content-type": content_type})
    assert r.status_code == 400
    assert r.json()["error"] == "MalformedForm"


async def test_form_over_the_parsers_limits_400_not_500(client):
    too_many = "&".join(f"f{i}=x" for i in range(1001))  # starlette parses 1000 fields at most
    r = await client.post("/demo/svc/echo", content=too_many, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "MalformedForm"


async def test_form_bodies_obey_the_size_limit_413(client):
    # The limit applies to forms too, spread over fields or sent as a file (no Content-Length).
    fields = {"text": "x", "a": "y" * 600_000, "b": "z" * 600_000}
    r = await client.post("/demo/svc/echo", data=fields)
    assert r.status_code == 413
    r = await client.post("/demo/svc/echo", data={"text": "x"}, files={"upload": ("f.bin", b"0" * (3 << 20))})
    assert r.status_code == 413

    async def chunks():
        yield b"text=x&pad="
        for _ in range(3):
            yield b"p" * (1 << 20)

    r = await client.post(
        "/demo/svc/echo", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413


async def test_small_forms_still_work(client):
    r = await client.post("/demo/svc/echo", data={"text": "hi", "times": "2"})
    assert r.status_code == 200 and r.json()["text"] == "hihi"
    r = await client.post("/demo/svc/echo", files={"text": (None, "hi")})
    assert r.status_code == 200


async def test_results_with_nan_or_infinity_are_valid_json() -> None:
    import json as strict_json

    from bollydog.entrypoint.http.responses import dumps

    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    assert strict_json.loads(dumps([float("nan"), float("-inf"), 1.5]), parse_constant=refuse) == [None, None, 1.5]


async def test_a_client_hanging_up_mid_body_is_one_info_line_not_a_failure(caplog):
    import logging

    async with serve() as (_hub, http, _client):
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.write(
            b"POST /demo/svc/add HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n{\"a\":"
        )
        await writer.drain()
        with caplog.at_level(logging.INFO):
            writer.close()
            for _ in range(100):  # the server notices the hang-up on its next read
                if any("closed the connection" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    lines = [r for r in caplog.records if "closed the connection" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and lines[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

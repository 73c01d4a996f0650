"""OpenAPI 3.1 document generated from the message models."""

import pytest
import pytest_asyncio
from openapi_spec_validator import validate

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def document(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


async def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_every_route_and_alias_is_described(server, document):
    _, http, _ = server
    for spec in http.routes:
        for path in spec.paths:
            assert set(document["paths"][path]) == {m.lower() for m in spec.methods}, path
    assert "/_bollydog/messages/{iid}" in document["paths"]


async def test_get_parameters_are_user_fields_and_delivery_fields(document):
    operation = document["paths"]["/demo/svc/echo"]["get"]
    params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert {"text", "times", "expire_time", "priority", "qos"} <= set(params)
    assert not {"iid", "trace_id", "span_id", "parent_span_id", "created_by", "created_time",
                "delivery_count"} & set(params)
    assert params["text"]["required"] is True and params["times"]["required"] is False
    assert params["times"]["schema"]["type"] == "integer"
    basket = document["paths"]["/demo/svc/basket"]["get"]
    items = next(p for p in basket["parameters"] if p["name"] == "items")
    assert "application/json" in items["content"]  # list fields travel as JSON text


async def test_post_body_schema(document):
    operation = document["paths"]["/demo/svc/add"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"a", "b"}
    assert "iid" not in schema["properties"] and "a" in schema["properties"]
    assert operation["requestBody"]["required"] is True
    assert {"200", "202", "422", "500", "503", "504"} <= set(operation["responses"])


async def test_result_schemas_from_return_annotations(document):
    ok = document["paths"]["/demo/svc/add"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"type": "integer"}
    streamed = document["paths"]["/demo/svc/progress"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in streamed


async def test_rate_limited_routes_document_429(document):
    assert "429" in document["paths"]["/demo/svc/slow"]["get"]["responses"]
    assert "429" not in document["paths"]["/demo/svc/echo"]["get"]["responses"]

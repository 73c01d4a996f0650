"""OpenAPI 3.1 description of the served routes, generated from the message models.

Request schemas hold the user fields of each message plus the client-settable delivery fields
(``expire_time``, ``priority``, ``qos``); identity and trace fields never appear. GET (HEAD,
DELETE) take the fields as query parameters (list/object fields as JSON text); other methods
take a JSON or form body. Response schemas come from the handler's return annotation when
pydantic can describe it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bollydog.entrypoint.kit.schemas import message_schemas, result_schema
from bollydog.handlers import ASYNCGEN
from bollydog.models.base import CLIENT_SETTABLE_FIELDS, RESERVED_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.http.routes import RouteSpec

REF = "#/components/schemas/{model}"
_HIDDEN = RESERVED_FIELDS - CLIENT_SETTABLE_FIELDS
_SCALARS = {"string", "integer", "number", "boolean", "null"}
_QUERY_METHODS = {"GET", "HEAD", "DELETE"}

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "Error type."},
        "message": {"type": "string"},
        "traceback": {"type": "array", "items": {"type": "string"}, "description": "debug only"},
    },
}
_VALIDATION_ERROR = {
    "type": "object",
    "required": ["error", "message", "errors"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["iid", "trace_id", "status", "location"],
    "properties": {
        "iid": {"type": "string"},
        "trace_id": {"type": "string"},
        "status": {"const": "accepted"},
        "location": {"type": "string"},
    },
}
_OUTCOME = {
    "type": "object",
    "required": ["iid", "trace_id", "status"],
    "properties": {
        "iid": {"type": "string"},
        "trace_id": {"type": "string"},
        "domain": {"type": "string"},
        "name": {"type": "string"},
        "status": {"enum": ["pending", "done", "failed"]},
        "result": {},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _error(description: str, schema: str = "BollydogError", **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}, **extra}


def _is_scalar(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return False
    if "anyOf" in schema:
        return all(_is_scalar(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind) <= _SCALARS
    return kind in _SCALARS or (kind is None and ("enum" in schema or "const" in schema))


def _return_schema(spec: "RouteSpec", schemas: dict[str, Any]) -> dict[str, Any]:
    """The handler's return annotation as a schema; ``{}`` (anything) when unknown."""
    schema = result_schema(spec.handler, ref_template=REF)
    if schema is None:
        return {}
    defs = schema.pop("$defs", {})
    if any(name in schemas and schemas[name] != value for name, value in defs.items()):
        return {}  # a different model of the same name: describe the result as anything
    schemas.update(defs)
    return schema


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    required = set(schema.get("required", []))
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop["description"]
        if _is_scalar(prop):
            param["schema"] = prop
        else:  # sent as JSON text, e.g. lines=[{"sku":"a","quantity":1}]
            param["content"] = {"application/json": {"schema": prop}}
        params.append(param)
    return params


_HEAD_OK = {"description": "The handler ran; a HEAD response has no body."}

_HEADERS = [
    {"name": "traceparent", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "W3C trace context: the message joins this trace."},
    {"name": "x-bollydog-qos", "in": "header", "required": False,
     "schema": {"type": "integer", "enum": [0, 1, 2]},
     "description": "0: fire-and-forget (202 and a message id)."},
]


def build_openapi(
    specs: list["RouteSpec"],
    *,
    title: str = "bollydog",
    version: str = "0.1.0",
    auth: bool = False,
    root_path: str = "",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``specs``; ``root_path`` (a mount point) is its server URL,
    the paths being below it."""
    names, schemas = message_schemas([s.message for s in specs], REF, _HIDDEN)
    paths: dict[str, Any] = {}
    for spec in specs:
        name = names[spec.message]
        request = schemas[name]
        result = _return_schema(spec, schemas)
        doc = (spec.message.__doc__ or "").strip()
        success: dict[str, Any] = {"application/json": {"schema": result}}
        if spec.handler is not None and spec.handler.kind == ASYNCGEN:
            success["text/event-stream"] = {
                "schema": {
                    "type": "string",
                    "description": "With Accept: text/event-stream: 'partial' events, then 'result' or 'error'.",
                },
            }
        responses: dict[str, Any] = {
            "200": {"description": "The handler's result.", "content": success},
            "202": {"description": "qos=0: queued; poll the location for the outcome.",
                    "content": {"application/json": {"schema": _ref("BollydogAccepted")}}},
            "400": _error("Malformed request body."),
            "422": _error("Invalid or missing fields.", "BollydogValidationError"),
            # The handler's own refusals: a DomainError answers its class's status_code.
            "4XX": _error("Refused by the handler: a domain error, answered with its status code."),
            "500": _error("The handler failed."),
            "503": _error("The hub is full or stopping; see Retry-After."),
            "504": _error("The handler did not finish within expire_time."),
        }
        if auth:
            responses["401"] = _error("Missing, expired or invalid token.")
        if spec.limiter is not None:
            responses["429"] = _error(f"Rate limit {spec.limiter.rate_text} exceeded; see Retry-After.")
        for index, path in enumerate(spec.paths):
            item = paths.setdefault(path, {})
            for method in spec.methods:
                operation: dict[str, Any] = {
                    "operationId": f"{spec.key}.{method.lower()}" + (f".alias{index}" if index else ""),
                    "summary": doc.splitlines()[0] if doc else spec.key,
                    "tags": [spec.key.rpartition(".")[0]],
                    "parameters": list(_HEADERS),
                    "responses": responses if method != "HEAD" else {**responses, "200": _HEAD_OK},
                }
                if doc:
                    operation["description"] = doc
                if method in _QUERY_METHODS:
                    operation["parameters"] = [*_query_parameters(request), *_HEADERS]
                else:
                    body_schema = _ref(name)
                    operation["requestBody"] = {
                        "required": bool(request.get("required")),
                        "content": {
                            "application/json": {"schema": body_schema},
                            "application/x-www-form-urlencoded": {"schema": body_schema},
                        },
                    }
                item[method.lower()] = operation
    paths["/_bollydog/messages/{iid}"] = {
        "get": {
            "operationId": "bollydog.outcome.get",
            "summary": "Outcome of a fire-and-forget (qos=0) message.",
            "tags": ["bollydog"],
            "parameters": [{"name": "iid", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "pending, done (with result) or failed (with error).",
                        "content": {"application/json": {"schema": _ref("BollydogOutcome")}}},
                "404": _error("Unknown message id (or no longer kept)."),
                **({"401": _error("Missing, expired or invalid token.")} if auth else {}),
            },
        }
    }
    schemas.update(
        BollydogError=_ERROR,
        BollydogValidationError=_VALIDATION_ERROR,
        BollydogAccepted=_ACCEPTED,
        BollydogOutcome=_OUTCOME,
    )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if root_path:
        document["servers"] = [{"url": root_path}]
    if auth:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "accessToken": {"type": "apiKey", "in": "header", "name": "x-access-token"},
        }
        document["security"] = [{"bearerAuth": []}, {"accessToken": []}]
    return document

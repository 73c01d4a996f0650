"""JSON Schemas of what a client sends and gets back: shared by OpenAPI and the MCP tool list.

A message's request schema is its pydantic schema without the framework fields a client may
not set; a handler's result schema comes from its return annotation, when pydantic can
describe it. Both entrypoints describe the same messages, so they describe them one way.
"""

from __future__ import annotations

import typing
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, models_json_schema

from bollydog.handlers import ASYNCGEN
from bollydog.models.base import RESERVED_FIELDS

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler
    from bollydog.models.base import BaseMessage

__all__ = ["message_schemas", "request_schema", "result_schema", "without_fields"]


def without_fields(schema: dict[str, Any], hidden: Collection[str]) -> dict[str, Any]:
    """``schema`` (an object schema) without the properties named in ``hidden``.

    ``required`` keeps only what is left, and is dropped when nothing is required: an empty
    ``required`` list is invalid in older JSON Schema drafts some clients still use.
    """
    properties = {k: v for k, v in schema.get("properties", {}).items() if k not in hidden}
    out = {k: v for k, v in schema.items() if k not in ("properties", "required")}
    out["properties"] = properties
    required = [k for k in schema.get("required", []) if k in properties]
    if required:
        out["required"] = required
    return out


def request_schema(
    message: type["BaseMessage"], hidden: Collection[str] = RESERVED_FIELDS
) -> dict[str, Any]:
    """The self-contained JSON Schema (``$defs`` inside) of ``message``'s fields a client sends."""
    return without_fields(message.model_json_schema(mode="validation"), hidden)


def message_schemas(
    messages: Collection[type["BaseMessage"]], ref_template: str, hidden: Collection[str] = RESERVED_FIELDS
) -> tuple[dict[type["BaseMessage"], str], dict[str, Any]]:
    """The request schemas of ``messages`` as one set of named schemas (a document's
    components: OpenAPI's, AsyncAPI's), nested models shared and referenced by
    ``ref_template``; and the schema name of each message."""
    unique = list(dict.fromkeys(messages))
    refs, top = models_json_schema([(m, "validation") for m in unique], ref_template=ref_template)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    names: dict[type[BaseMessage], str] = {}
    for message in unique:
        name = names[message] = refs[(message, "validation")]["$ref"].rsplit("/", 1)[1]
        schemas[name] = without_fields(schemas[name], hidden)
    return names, schemas


def result_schema(handler: "Handler | None", ref_template: str = DEFAULT_REF_TEMPLATE) -> dict[str, Any] | None:
    """The JSON Schema of what ``handler`` returns, from its return annotation; None when unknown.

    Unknown: handled in another process (``handler`` None), an async generator (its result is
    the last value it yields, of no declared type), no annotation, ``Any``, or an annotation
    pydantic cannot describe. Nested models are under ``$defs``, referenced by ``ref_template``.
    """
    if handler is None or handler.kind == ASYNCGEN:
        return None
    try:
        annotation = typing.get_type_hints(handler.func).get("return")
        if annotation is None or annotation is typing.Any:
            return None
        schema: dict[str, Any] = TypeAdapter(annotation).json_schema(ref_template=ref_template, mode="serialization")
    except Exception:  # noqa: BLE001 - any annotation pydantic cannot describe means "unknown"
        return None
    return schema

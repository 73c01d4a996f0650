"""The tool table: one MCP tool per Command this process can run or route.

A tool's name is the Command's canonical name with ``.`` replaced by ``_`` (clients refuse dots
and names over 64 characters: ``library.borrow`` is the tool ``library_borrow``). Its
description is the class docstring (then the handler's); its input schema the message's JSON
Schema without the framework fields; its output schema comes from the handler's return
annotation. MCP wants structured results to be objects, so a result whose schema is not an
object schema (a list, a number, unknown) is wrapped: ``{"result": <value>}``. The output
schema always says which: every tool has one.

Annotations come from the class attribute ``mcp_annotations``; a Command served over HTTP with
GET only is ``readOnlyHint: true`` unless its class says otherwise.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types

from bollydog.entrypoint.kit.schemas import request_schema, result_schema
from bollydog.errors import ConfigError
from bollydog.handlers import ASYNCGEN

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry
    from bollydog.models.base import BaseMessage
    from bollydog.names import MessageFilter

__all__ = ["RESULT_KEY", "ToolSpec", "ToolTable", "build_tools", "tool_name"]

#: The key of a wrapped (non-object) structured result.
RESULT_KEY = "result"
#: What MCP clients accept as a tool name (Claude, OpenAI and VS Code agree on this one).
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: ``mcp_annotations`` keys: MCP's own spelling, so a class reads like the tool listing.
ANNOTATION_KEYS: Mapping[str, type] = {
    "title": str,
    "readOnlyHint": bool,
    "destructiveHint": bool,
    "idempotentHint": bool,
    "openWorldHint": bool,
}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One served Command as a tool."""

    name: str  #: the tool name, ``domain_message``
    key: str  #: the canonical message name, ``domain.message``
    message: type["BaseMessage"]
    tool: types.Tool  #: what ``tools/list`` shows
    wrapped: bool  #: structured content is ``{"result": <value>}``
    streams: bool  #: may produce partial results (an async generator, or handled elsewhere)


class ToolTable:
    """Tools by name, in listing order (sorted by tool name)."""

    __slots__ = ("by_name", "listing")

    def __init__(self, specs: Iterable[ToolSpec]) -> None:
        self.by_name: dict[str, ToolSpec] = {s.name: s for s in sorted(specs, key=lambda s: s.name)}
        self.listing: list[types.Tool] = [s.tool for s in self.by_name.values()]

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str) -> ToolSpec | None:
        return self.by_name.get(name)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The input schema of tool ``name`` (the SDK validates ``Mcp-Param-*`` headers with it)."""
        spec = self.by_name.get(name)
        return spec.tool.input_schema if spec is not None else None


def tool_name(key: str) -> str:
    """The tool name of canonical message name ``key``."""
    return key.replace(".", "_")


def build_tools(
    registry: "HandlerRegistry", allowed: "MessageFilter", read_only: Collection[str] = ()
) -> ToolTable:
    """The tools for every Command of ``registry`` that ``allowed`` lets through.

    ``read_only`` are canonical names served by GET only over HTTP. Raises
    :class:`ConfigError` for a tool name clients would refuse (too long, odd characters), two
    Commands whose tool names collide, or invalid ``mcp_annotations``.
    """
    read_only = {k.lower() for k in read_only}
    specs: dict[str, ToolSpec] = {}
    for served in registry.served_commands():
        message, handler = served.message, served.handler
        key = registry.name_of(message)
        if not allowed.allows(key):
            continue
        spec = _spec(message, handler, key, key.lower() in read_only)
        other = specs.get(spec.name)
        if other is not None:
            raise ConfigError(
                f"mcp: {other.key} and {key} both become the tool name '{spec.name}' ('.' turns into "
                "'_'); rename one message (its 'name' class attribute) or exclude one (mcp.exclude)"
            )
        specs[spec.name] = spec
    return ToolTable(specs.values())


def _spec(message: type["BaseMessage"], handler: "Handler | None", key: str, get_only: bool) -> ToolSpec:
    name = tool_name(key)
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise ConfigError(
            f"mcp: {key} cannot be a tool: its tool name '{name}' must be at most {MAX_NAME_LENGTH} "
            "characters of letters, digits, '_' and '-'; shorten the message's 'name' class "
            "attribute or its domain (the config key), or exclude it (mcp.exclude)"
        )
    output, wrapped = _output_schema(result_schema(handler))
    return ToolSpec(
        name=name,
        key=key,
        message=message,
        tool=types.Tool(
            name=name,
            description=_description(message, handler, key),
            input_schema=request_schema(message),
            output_schema=output,
            annotations=_annotations(message, key, get_only),
        ),
        wrapped=wrapped,
        streams=handler is None or handler.kind == ASYNCGEN,
    )


def _description(message: type["BaseMessage"], handler: "Handler | None", key: str) -> str:
    # ``__dict__``: a class without a docstring must not show its base class's.
    parts = [inspect.cleandoc(message.__dict__.get("__doc__") or "")]
    if handler is not None:
        parts.append(inspect.cleandoc(handler.func.__doc__ or ""))
    text = "\n\n".join(dict.fromkeys(p for p in parts if p))
    return text or f"Runs the command {key}."


def _output_schema(schema: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """The tool's output schema and whether results are wrapped as ``{"result": ...}``."""
    if schema is not None and schema.get("type") == "object":
        return schema, False
    inner = dict(schema or {})
    # ``$defs`` stay at the root, where the ``#/$defs/...`` references inside point.
    defs = inner.pop("$defs", None)
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {RESULT_KEY: inner},
        "required": [RESULT_KEY],
    }
    if defs:
        wrapper["$defs"] = defs
    return wrapper, True


def _annotations(message: type["BaseMessage"], key: str, get_only: bool) -> types.ToolAnnotations | None:
    hints: dict[str, Any] = {"readOnlyHint": True} if get_only else {}
    declared = getattr(message, "mcp_annotations", None)
    if declared is not None:
        if not isinstance(declared, Mapping):
            raise ConfigError(
                f"{message.__module__}.{message.__qualname__}.mcp_annotations must be a dict "
                f"like {{'readOnlyHint': True}}, got {type(declared).__name__}"
            )
        for hint, value in declared.items():
            expected = ANNOTATION_KEYS.get(hint)
            if expected is None or not isinstance(value, expected):
                raise ConfigError(
                    f"{message.__module__}.{message.__qualname__}.mcp_annotations: {hint!r}: "
                    f"{value!r} is not a valid hint of {key}; the hints are "
                    + ", ".join(f"{k} ({t.__name__})" for k, t in ANNOTATION_KEYS.items())
                )
        hints.update(declared)
    return types.ToolAnnotations.model_validate(hints) if hints else None

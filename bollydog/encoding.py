"""The one JSON encoding of what bollydog answers: HTTP bodies and SSE events, WebSocket frames,
MCP tool results and progress, the output of ``bollydog execute``, and results and partial
results crossing processes (the Redis wire), so a split deployment answers as one process does.

``pydantic_core`` serialises what a handler returns (models, dataclasses, dates, sets, UUIDs,
``Decimal``...). A value JSON cannot hold becomes its ``str()``, and NaN/Infinity become
``null`` (JSON has no literal for them), so one result reads the same through every entrypoint.
A string holding a lone UTF-16 surrogate (``"\\ud800"``, which a client can send as a JSON
escape) cannot be UTF-8: such a value is encoded as ASCII JSON instead, the surrogate as the
``\\ud800`` escape it came in as, rather than failing the reply.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

__all__ = ["dumps", "dumps_text", "jsonable"]


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value`` (UTF-8, not ASCII-escaped unless it holds a lone
    surrogate)."""
    try:
        return to_json(value, fallback=str, inf_nan_mode="null")
    except PydanticSerializationError as exc:
        return _ascii_json(value, exc).encode()


def dumps_text(value: Any) -> str:
    """:func:`dumps` as text: a WebSocket frame, a line of output."""
    try:
        return to_json(value, fallback=str, inf_nan_mode="null").decode()
    except PydanticSerializationError as exc:
        return _ascii_json(value, exc)


def _ascii_json(value: Any, error: PydanticSerializationError) -> str:
    # pydantic_core writes UTF-8 and refuses a lone surrogate; json escapes it (\ud800).
    if "surrogates not allowed" not in str(error):
        raise error
    return json.dumps(jsonable(value), ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def jsonable(value: Any) -> Any:
    """The JSON-compatible Python form of ``value`` (dicts, lists, str...), as :func:`dumps`
    would encode it: for bodies built in Python before they are encoded."""
    return to_jsonable_python(value, fallback=str, inf_nan_mode="null")

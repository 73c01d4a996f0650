"""The one JSON encoding of what bollydog answers: HTTP bodies and SSE events, WebSocket frames,
MCP tool results and progress, the output of ``bollydog execute``, and results and partial
results crossing processes (the Redis wire), so a split deployment answers as one process does.

``pydantic_core`` serialises what a handler returns (models, dataclasses, dates, sets, UUIDs,
``Decimal``...). A value JSON cannot hold becomes its ``str()``, and NaN/Infinity become
``null`` (JSON has no literal for them), so one result reads the same through every entrypoint.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json, to_jsonable_python

__all__ = ["dumps", "dumps_text", "jsonable"]


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value`` (UTF-8, not ASCII-escaped)."""
    return to_json(value, fallback=str, inf_nan_mode="null")


def dumps_text(value: Any) -> str:
    """:func:`dumps` as text: a WebSocket frame, a line of output."""
    return to_json(value, fallback=str, inf_nan_mode="null").decode()


def jsonable(value: Any) -> Any:
    """The JSON-compatible Python form of ``value`` (dicts, lists, str...), as :func:`dumps`
    would encode it: for bodies built in Python before they are encoded."""
    return to_jsonable_python(value, fallback=str, inf_nan_mode="null")

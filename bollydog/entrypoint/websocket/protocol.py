"""The WebSocket wire protocol: parsing client frames, building server frames, topic patterns.

Pure functions and small value objects, no I/O: :mod:`.connection` does the talking. The
protocol itself is documented in ``docs/websocket.md``. Frames are encoded by the kit
(:func:`~bollydog.encoding.dumps_text`), as every entrypoint's answers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from bollydog.entrypoint.kit.admission import retry_after
from bollydog.encoding import dumps_text as encode
from bollydog.errors import MessageError, describe
from bollydog.handlers import HandlerRegistry
from bollydog.models.base import BaseMessage
from bollydog.names import MessageFilter

__all__ = [
    "Frame",
    "InvalidFrameError",
    "MessageFilter",
    "decode",
    "encode",
    "error_frame",
    "parse_frame",
    "peek_id",
    "topic_matches",
    "topic_of",
    "validate_topic",
]

#: Keys of a request frame that belong to the protocol, not to the message's fields.
ENVELOPE_KEYS: frozenset[str] = frozenset({"type", "id", "name", "traceparent"})
REQUEST, SUBSCRIBE, UNSUBSCRIBE, PING = "request", "subscribe", "unsubscribe", "ping"
FRAME_TYPES: frozenset[str] = frozenset({REQUEST, SUBSCRIBE, UNSUBSCRIBE, PING})

_TOPIC_SEGMENT = re.compile(r"^(\*|#|[^.*#\s]+)$")


class InvalidFrameError(MessageError, ValueError):
    """A client frame is not a protocol frame: not JSON, not an object, a bad envelope key."""


# -- frames in ----------------------------------------------------------------------------------


@dataclass
class Frame:
    """One parsed client frame. ``fields`` are the message fields of a request frame."""

    type: str
    id: Any = None
    name: str | None = None
    traceparent: str | None = None
    topics: list[str] | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def _unicode(text: str) -> bool:
    """False for a string holding a lone UTF-16 surrogate (JSON lets ``"\\ud800"`` through; it
    is no character and cannot be UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_id(value: Any) -> bool:
    # NaN/Infinity parse (Python's json) but echoing them back would not be JSON.
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _unicode(value)
    return isinstance(value, int) and not isinstance(value, bool)


def peek_id(raw: Any) -> Any:
    """The correlation id of a frame that failed to parse, if one can be read safely."""
    if isinstance(raw, dict):
        value = raw.get("id")
        if value is None or _valid_id(value):
            return value
    return None


def decode(text: str | bytes) -> Any:
    """JSON-decode a frame; :class:`InvalidFrameError` when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFrameError(f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidFrameError("frame is nested too deeply") from None


def parse_frame(raw: Any) -> Frame:
    """Validate a decoded frame's envelope; the message fields are validated later."""
    if not isinstance(raw, dict):
        raise InvalidFrameError(f"frame must be a JSON object, got {type(raw).__name__}")
    frame_id = raw.get("id")
    if frame_id is not None and not _valid_id(frame_id):
        raise InvalidFrameError("'id' must be a string (valid Unicode), a (finite) number or null")
    kind = raw.get("type", REQUEST)
    if not isinstance(kind, str) or kind not in FRAME_TYPES:
        raise InvalidFrameError(f"unknown frame type {kind!r}; expected one of {', '.join(sorted(FRAME_TYPES))}")
    if kind in (SUBSCRIBE, UNSUBSCRIBE):
        extra = set(raw) - {"type", "id", "topics"}
        if extra:
            raise InvalidFrameError(f"unexpected keys in a {kind} frame: {', '.join(sorted(extra))}")
        topics = raw.get("topics")
        if topics is None and kind == UNSUBSCRIBE:
            return Frame(kind, frame_id, topics=None)  # unsubscribe from everything
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
            raise InvalidFrameError(f"a {kind} frame needs 'topics': a non-empty list of strings")
        for topic in topics:
            validate_topic(topic)
        return Frame(kind, frame_id, topics=list(dict.fromkeys(topics)))
    if kind == PING:
        return Frame(kind, frame_id)
    name = raw.get("name")
    if not isinstance(name, str) or not name or not _unicode(name):
        raise InvalidFrameError("a request frame needs 'name': a registered message name or 'domain.name'")
    traceparent = raw.get("traceparent")
    if traceparent is not None and not isinstance(traceparent, str):
        raise InvalidFrameError("'traceparent' must be a string")
    fields = {k: v for k, v in raw.items() if k not in ENVELOPE_KEYS}
    return Frame(kind, frame_id, name=name, traceparent=traceparent, fields=fields)


# -- message names -------------------------------------------------------------------------------


def topic_of(registry: HandlerRegistry, message: BaseMessage | type[BaseMessage]) -> str:
    """A message's topic and allow-list key: its canonical name."""
    return registry.name_of(message if isinstance(message, type) else type(message))


# -- topic patterns ------------------------------------------------------------------------------


def validate_topic(pattern: str) -> None:
    """A topic pattern is dot-separated segments, each a literal, ``*`` or ``#``."""
    if not pattern or not _unicode(pattern) or not all(_TOPIC_SEGMENT.match(s) for s in pattern.split(".")):
        raise InvalidFrameError(
            f"invalid topic pattern {pattern!r}: use dot-separated segments, each a name, "
            "'*' (one segment) or '#' (any number of segments)"
        )


def topic_matches(pattern: str, topic: str) -> bool:
    """``*`` matches exactly one segment, ``#`` zero or more; other segments match literally."""
    # One pass over the pattern keeping the set of topic positions reachable so far: time
    # O(len(pattern) * len(topic)), no recursion, whatever a client subscribes with.
    words = topic.split(".")
    reachable = {0}
    for segment in pattern.split("."):
        if segment == "#":
            reachable = set(range(min(reachable), len(words) + 1)) if reachable else reachable
        else:
            reachable = {i + 1 for i in reachable if i < len(words) and segment in ("*", words[i])}
        if not reachable:
            return False
    return len(words) in reachable


# -- frames out ----------------------------------------------------------------------------------


def error_frame(request_id: Any, error: BaseException) -> dict[str, Any]:
    """``{"type": "error", "id", "error": <code>, "message", "status", "errors", <fields>}``:
    the HTTP error body of ``error`` (:func:`~bollydog.errors.describe`) plus its status, and
    ``retry_after`` (seconds) when a retry may succeed (queue full, stopping), as HTTP's
    ``Retry-After``."""
    info = describe(error)
    frame: dict[str, Any] = {"type": "error", "id": request_id, **info.body(), "status": info.status}
    frame.setdefault("errors", [])  # field problems of an InvalidMessageError; always a list
    seconds = retry_after(error)
    if seconds is not None:
        frame["retry_after"] = seconds
    return frame

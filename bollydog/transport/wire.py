"""The JSON wire format of the Redis transport: request, event and reply envelopes.

An envelope is the flat field map of one Redis stream entry; every value is a string. It is
documented in ``docs/distribute.md`` so that producers in other languages can take part. This
module knows nothing about Redis: it turns messages into field maps and back.

A message class is never imported from what the wire says: :func:`resolve` looks the
``domain.name`` up among the classes the receiving hub registered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from bollydog.context import parse_traceparent
from bollydog.errors import BollydogError, HandlerTimeoutError, RemoteHandlerError, UnknownMessageError
from bollydog.models.base import CLIENT_SETTABLE_FIELDS, RESERVED_FIELDS, BaseMessage, Event, Session, validation_errors

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import HandlerRegistry

VERSION = "1"
#: Reserved fields bollydog producers send as headers, outside ``payload``.
_HEADER_FIELDS = ("trace_id", "span_id", "parent_span_id", "created_by", "delivery_count")
_PAYLOAD_EXCLUDE = RESERVED_FIELDS - CLIENT_SETTABLE_FIELDS


class WireError(BollydogError, ValueError):
    """An entry that is not a valid envelope: bad JSON, unknown message, invalid fields.

    Such entries go to the dead-letter stream with ``str(error)`` as their reason.
    """


@dataclass(slots=True)
class Envelope:
    """A decoded request or event entry (fields validated, message not built yet)."""

    name: str  # "domain.name"
    kind: str  # "command" or "event"
    id: str | None
    payload: dict[str, Any]
    headers: dict[str, str]
    reply_to: str | None
    deadline: float | None
    session: Session | None
    partials: bool = False  # the caller wants partial results on reply_to, before the reply


def encode(message: BaseMessage, name: str, *, reply_to: str | None = None, deadline: float | None = None,
           session: Session | None = None, partials: bool = False) -> dict[str, str]:
    """The stream entry fields for ``message``, whose canonical name is ``name``.

    ``partials``: ask the consumer to send the handler's partial results to ``reply_to``.
    """
    fields = {
        "v": VERSION,
        "kind": "event" if isinstance(message, Event) else "command",
        "name": name,
        "id": message.iid,
        "payload": json.dumps(
            message.model_dump(mode="json", exclude=_PAYLOAD_EXCLUDE), separators=(",", ":"), ensure_ascii=False
        ),
        "trace_id": message.trace_id,
        "span_id": message.span_id,
        "traceparent": f"00-{message.trace_id}-{message.span_id}-01",
        "created_time": repr(message.created_time),
    }
    if message.parent_span_id:
        fields["parent_span_id"] = message.parent_span_id
    if message.delivery_count:
        fields["delivery_count"] = str(message.delivery_count)
    if message.created_by is not None:
        fields["created_by"] = message.created_by
    if reply_to:
        fields["reply_to"] = reply_to
    if deadline is not None:
        fields["deadline"] = repr(deadline)
    if session is not None:
        fields["session"] = session.model_dump_json()
    if partials:
        fields["partials"] = "1"
    return fields


def decode(fields: dict[str, str]) -> Envelope:
    """Check an entry's fields; raise :class:`WireError` naming the first problem."""
    version = fields.get("v", VERSION)
    if version != VERSION:
        raise WireError(f"unsupported envelope version {version!r} (this consumer reads {VERSION!r})")
    name = fields.get("name")
    if not name or "." not in name:
        raise WireError(f"missing or invalid 'name' {name!r}: expected 'domain.message'")
    kind = fields.get("kind") or ""
    if kind not in ("", "command", "event"):
        raise WireError(f"invalid 'kind' {kind!r}: expected 'command' or 'event'")
    try:
        payload = json.loads(fields.get("payload") or "{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep for json
        raise WireError(f"'payload' is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WireError(f"'payload' must be a JSON object, got {type(payload).__name__}")
    forbidden = sorted(k for k in payload if k in _PAYLOAD_EXCLUDE)
    if forbidden:
        raise WireError(f"'payload' sets reserved fields {forbidden}: send them as envelope fields")
    session = None
    if fields.get("session"):
        try:
            session = Session.model_validate_json(fields["session"])
        except ValidationError as exc:
            raise WireError(f"invalid 'session': {exc.errors(include_url=False)[0]['msg']}") from None
    deadline = None
    if fields.get("deadline"):
        try:
            deadline = float(fields["deadline"])
        except ValueError:
            raise WireError(f"invalid 'deadline' {fields['deadline']!r}: expected unix seconds") from None
    headers = {k: fields[k] for k in (*_HEADER_FIELDS, "traceparent", "created_time") if fields.get(k)}
    return Envelope(
        name=name, kind=kind, id=fields.get("id") or None, payload=payload, headers=headers,
        reply_to=fields.get("reply_to") or None, deadline=deadline, session=session,
        partials=fields.get("partials") == "1",
    )


def resolve(registry: "HandlerRegistry", name: str) -> type[BaseMessage]:
    """The registered message class of canonical name ``name``; never imports anything."""
    try:
        return registry.resolve(name, imports=False)
    except UnknownMessageError as exc:
        raise WireError(f"{exc}: not registered in this process") from None


def build(message_class: type[BaseMessage], envelope: Envelope) -> BaseMessage:
    """The message an envelope carries; call it where its session is the current one."""
    if envelope.kind and (envelope.kind == "event") != issubclass(message_class, Event):
        raise WireError(f"'{envelope.name}' is not a {envelope.kind}")
    data = dict(envelope.payload)
    headers = envelope.headers
    if envelope.id is not None:
        data["iid"] = envelope.id
    if "trace_id" in headers:
        data["trace_id"] = headers["trace_id"]
        if "span_id" in headers:
            data["span_id"] = headers["span_id"]
        if "parent_span_id" in headers:
            data["parent_span_id"] = headers["parent_span_id"]
    elif "traceparent" in headers:
        # A foreign producer: its span is the parent of this message's span.
        parsed = parse_traceparent(headers["traceparent"])
        if parsed is None:
            raise WireError(f"invalid 'traceparent' {headers['traceparent']!r}")
        data["trace_id"], data["parent_span_id"] = parsed
    if "created_by" in headers:
        data["created_by"] = headers["created_by"]
    try:
        if "created_time" in headers:
            data["created_time"] = float(headers["created_time"])
        if "delivery_count" in headers:
            data["delivery_count"] = int(headers["delivery_count"])
    except ValueError as exc:
        raise WireError(f"invalid envelope field: {exc}") from None
    try:
        return message_class(**data)
    except ValidationError as exc:
        details = "; ".join(f"{e['field']}: {e['message']}" for e in validation_errors(exc))
        raise WireError(f"invalid {envelope.name}: {details}") from None


# -- replies -------------------------------------------------------------------------------------


def error_type(error: BaseException) -> str:
    """The name a reply gives an exception: ``ValueError``, ``shop.errors.OutOfStock``."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def encode_reply(message_id: str, entry_id: str, result: Any = None, error: BaseException | None = None) -> dict[str, str]:
    """The reply entry for a request: its result as JSON, or its error's type and text."""
    fields = {"v": VERSION, "id": message_id, "entry": entry_id}
    if error is None:
        fields["ok"] = "1"
        fields["result"] = json.dumps(
            to_jsonable_python(result, fallback=repr), separators=(",", ":"), ensure_ascii=False
        )
    else:
        fields["ok"] = "0"
        fields["error_type"] = error_type(error)
        fields["error"] = str(error)
    return fields


def encode_error_reply(message_id: str, entry_id: str, kind: str, text: str) -> dict[str, str]:
    return {"v": VERSION, "id": message_id, "entry": entry_id, "ok": "0", "error_type": kind, "error": text}


def decode_reply(fields: dict[str, str]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception to raise)`` from a reply entry."""
    if fields.get("ok") == "1":
        return True, json.loads(fields.get("result") or "null")
    kind, text = fields.get("error_type", "Error"), fields.get("error", "")
    if kind == "bollydog.errors.HandlerTimeoutError":
        return False, HandlerTimeoutError(f"remote handler timed out: {text}")
    return False, RemoteHandlerError(kind, text)


# -- partial results -----------------------------------------------------------------------------


@dataclass(slots=True)
class Partial:
    """A decoded partial-result entry of a reply stream."""

    id: str  # the request's message id
    seq: int  # 0, 1, 2... in the order the handler produced them
    value: Any


def encode_partial(message_id: str, entry_id: str, seq: int, value: Any) -> dict[str, str]:
    """The reply-stream entry for partial result number ``seq`` of a request."""
    return {
        "v": VERSION, "kind": "partial", "id": message_id, "entry": entry_id, "seq": str(seq),
        "data": json.dumps(to_jsonable_python(value, fallback=repr), separators=(",", ":"), ensure_ascii=False),
    }


def is_partial(fields: dict[str, str]) -> bool:
    """Whether a reply-stream entry is a partial result (the final reply has no ``kind``)."""
    return fields.get("kind") == "partial"


def decode_partial(fields: dict[str, str]) -> Partial:
    """A partial-result entry's id, sequence number and value; :class:`WireError` when invalid."""
    try:
        return Partial(id=fields["id"], seq=int(fields["seq"]), value=json.loads(fields.get("data") or "null"))
    except (KeyError, ValueError, RecursionError) as exc:
        raise WireError(f"invalid partial-result entry: {type(exc).__name__}: {exc}") from None

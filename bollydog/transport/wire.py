"""The JSON wire format of the Redis transport: request, event and reply envelopes.

An envelope is the flat field map of one Redis stream entry; every value is a string. It is
documented in ``docs/distribute.md`` so that producers in other languages can take part. This
module knows nothing about Redis: it turns messages into field maps and back.

A message class is never imported from what the wire says: :func:`resolve` looks the
``domain.name`` up among the classes the receiving hub registered. Neither is an exception
class: a failed reply is rebuilt only as a class the caller's process already imported
(:func:`exception_class`), else as a :class:`~bollydog.errors.RemoteHandlerError`.

One module (~430 lines): it is the documented format, envelopes and replies read together.
"""

from __future__ import annotations

import builtins
import json
import sys
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from bollydog.context import parse_traceparent
from bollydog.encoding import jsonable
from bollydog.errors import (
    BollydogError,
    ErrorInfo,
    RemoteHandlerError,
    UnknownMessageError,
    describe,
    public_attributes,
)
from bollydog.models.base import CLIENT_SETTABLE_FIELDS, RESERVED_FIELDS, BaseMessage, Event, Session, validation_errors

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import HandlerRegistry

VERSION = "1"
#: Reserved fields bollydog producers send as headers, outside ``payload``.
_HEADER_FIELDS = ("trace_id", "span_id", "parent_span_id", "created_by", "delivery_count")
#: The envelope fields :func:`decode` keeps as headers for :func:`build`.
_HEADERS_KEPT = (*_HEADER_FIELDS, "traceparent", "created_time")
_PAYLOAD_EXCLUDE: set[str] = set(RESERVED_FIELDS - CLIENT_SETTABLE_FIELDS)


class WireError(BollydogError, ValueError):
    """An entry that is not a valid envelope: bad JSON, unknown message, invalid fields.

    Such entries go to the dead-letter stream with ``str(error)`` as their reason.
    """


class InvalidFieldsError(WireError):
    """A valid envelope whose message fields are not: the sender's error (422, as over HTTP).
    ``errors`` holds one ``{"field", "message", "type"}`` dict per problem."""

    status_code = 422
    fields = ("errors",)

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


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
        "payload": _dumps(message.model_dump(mode="json", exclude=_PAYLOAD_EXCLUDE)),
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


def _is_text(value: str) -> bool:
    """Whether ``value`` is text, not the lone surrogates that stand for undecodable bytes."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode(fields: dict[str, str]) -> Envelope:
    """Check an entry's fields; raise :class:`WireError` naming the first problem."""
    # All-ASCII entries (the usual ones) are checked in two C calls, not two per field.
    if not ("".join(fields).isascii() and "".join(fields.values()).isascii()):
        for key, value in fields.items():
            if not _is_text(value) or not _is_text(key):
                raise WireError(f"field {key!r} is not valid UTF-8")
    get = fields.get
    version = get("v", VERSION)
    if version != VERSION:
        raise WireError(f"unsupported envelope version {version!r} (this consumer reads {VERSION!r})")
    name = get("name")
    if not name or "." not in name:
        raise WireError(f"missing or invalid 'name' {name!r}: expected 'domain.message'")
    kind = get("kind") or ""
    if kind not in ("", "command", "event"):
        raise WireError(f"invalid 'kind' {kind!r}: expected 'command' or 'event'")
    try:
        payload = json.loads(get("payload") or "{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep for json
        raise WireError(f"'payload' is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WireError(f"'payload' must be a JSON object, got {type(payload).__name__}")
    if not _PAYLOAD_EXCLUDE.isdisjoint(payload):
        forbidden = sorted(k for k in payload if k in _PAYLOAD_EXCLUDE)
        raise WireError(f"'payload' sets reserved fields {forbidden}: send them as envelope fields")
    session = None
    if get("session"):
        try:
            session = Session.model_validate_json(fields["session"])
        except ValidationError as exc:
            raise WireError(f"invalid 'session': {exc.errors(include_url=False)[0]['msg']}") from None
    deadline = None
    if get("deadline"):
        try:
            deadline = float(fields["deadline"])
        except ValueError:
            raise WireError(f"invalid 'deadline' {fields['deadline']!r}: expected unix seconds") from None
    headers = {k: header for k in _HEADERS_KEPT if (header := get(k))}
    return Envelope(
        name=name, kind=kind, id=get("id") or None, payload=payload, headers=headers,
        reply_to=get("reply_to") or None, deadline=deadline, session=session, partials=get("partials") == "1",
    )


def resolve(registry: "HandlerRegistry", name: str) -> type[BaseMessage]:
    """The registered message class of canonical name ``name``; never imports anything."""
    try:
        return registry.resolve(name, imports=False)
    except UnknownMessageError as exc:
        raise WireError(f"{exc}: not registered in this process") from None


def build(
    message_class: type[BaseMessage], envelope: Envelope, max_delivery_count: int | None = None
) -> BaseMessage:
    """The message an envelope carries; call it where its session is the current one.

    ``max_delivery_count``: the most deliveries the consumer allows (its ``max_deliveries``); a
    larger ``delivery_count`` from the wire is brought down to it, so that no producer makes a
    failing handler retry without end."""
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
            delivery_count = int(headers["delivery_count"])
            if max_delivery_count is not None:
                delivery_count = min(delivery_count, max_delivery_count)
            data["delivery_count"] = delivery_count
    except ValueError as exc:
        raise WireError(f"invalid envelope field: {exc}") from None
    try:
        return message_class(**data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        details = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidFieldsError(f"invalid {envelope.name}: {details}", errors) from None


# -- replies -------------------------------------------------------------------------------------


def error_type(error: BaseException) -> str:
    """The name a reply gives an exception: ``ValueError``, ``shop.errors.OutOfStock``; a
    relayed :class:`RemoteHandlerError` keeps the name of the original."""
    if isinstance(error, RemoteHandlerError):
        return error.error_type
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _dumps(value: Any) -> str:
    """Compact JSON text that Redis can store as UTF-8.

    Non-ASCII text is written as itself; a lone surrogate (``"\\ud800"``, which JSON input can
    carry but UTF-8 cannot) makes the whole text fall back to ``\\u`` escapes, still valid JSON.
    Written by pydantic-core, several times faster than ``json.dumps`` on text (0.4 against
    1.8 ms for a 1 MB string), the same JSON but for the exponent of small floats (``1e-7``
    where ``json.dumps`` writes ``1e-07``); ``json.dumps`` for what it cannot write.
    """
    try:
        return to_json(value, inf_nan_mode="constants").decode()
    except PydanticSerializationError:  # a lone surrogate: not UTF-8
        pass
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, separators=(",", ":"))
    return text


def _jsonable(value: Any) -> tuple[bool, Any]:
    """``(True, JSON-compatible value)``, or ``(False, None)`` when it has no JSON form."""
    try:
        return True, to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError):
        return False, None


def encode_error(error: BaseException) -> dict[str, str]:
    """The reply fields of a failure: its type and text, its mapping (:func:`describe`), and what
    the caller needs to rebuild it: its ``args`` and public attributes, as JSON."""
    info = describe(error)
    if isinstance(error, RemoteHandlerError):  # relayed from a further process: as it came
        text, args, attributes = error.remote_message, error.remote_args, error.remote_attrs
    else:
        text, args, attributes = str(error), list(error.args), public_attributes(error)
    fields = {
        "error_type": error_type(error),
        "error": text,
        "error_code": info.code,
        "error_status": str(info.status),
        "error_exit": str(info.exit_code),
    }
    if info.internal:
        fields["error_internal"] = "1"
    ok, args = _jsonable(args)
    if ok:
        fields["error_args"] = _dumps(args)
    attrs = {}
    for name, value in attributes.items():  # an attribute with no JSON form stays behind
        ok, value = _jsonable(value)
        if ok:
            attrs[name] = value
    if attrs:
        fields["error_attrs"] = _dumps(attrs)
    if info.fields:
        fields["error_fields"] = _dumps(jsonable(info.fields))
    if info.retry_after is not None:
        fields["error_retry_after"] = repr(info.retry_after)
    return fields


def encode_reply(message_id: str, entry_id: str, result: Any = None, error: BaseException | None = None) -> dict[str, str]:
    """The reply entry for a request: its result as JSON, or its error (:func:`encode_error`)."""
    fields = {"v": VERSION, "id": message_id, "entry": entry_id}
    if error is None:
        fields["ok"] = "1"
        fields["result"] = _dumps(jsonable(result))
    else:
        fields["ok"] = "0"
        fields.update(encode_error(error))
    return fields


def encode_error_reply(message_id: str, entry_id: str, kind: str, text: str) -> dict[str, str]:
    return {"v": VERSION, "id": message_id, "entry": entry_id, "ok": "0", "error_type": kind, "error": text}


def exception_class(name: str) -> type[Exception] | None:
    """The exception class a reply names (``error_type``), if this process already has it.

    Nothing is imported: the class must be in a module of ``sys.modules``, found by plain
    attribute lookup (no module ``__getattr__``), be an :class:`Exception` subclass and carry
    exactly that name. ``__main__`` is another program in another process: never looked at.
    """
    parts = name.split(".")
    module: types.ModuleType = builtins
    qualname = parts
    if len(parts) > 1:
        for cut in range(len(parts) - 1, 0, -1):  # the longest imported module prefix
            found = sys.modules.get(".".join(parts[:cut]))
            if found is not None:
                module, qualname = found, parts[cut:]
                break
        else:
            return None
        if module.__name__ == "__main__":
            return None
    value: Any = module
    for part in qualname:
        value = getattr(value, "__dict__", {}).get(part)
        if value is None:
            return None
    if not (isinstance(value, type) and issubclass(value, Exception)):
        return None
    expected = name if len(parts) > 1 else f"builtins.{name}"
    return value if f"{value.__module__}.{value.__qualname__}" == expected else None


def rebuild_error(cls: type[Exception], args: list[Any], attrs: dict[str, Any]) -> Exception | None:
    """An instance of ``cls`` with these ``args`` and attributes, or None when it cannot be made.

    Built as unpickling does (``cls(*args)``, then the attributes); a class whose ``__init__``
    takes other parameters than its ``args`` is made without calling ``__init__``."""
    try:
        error = cls(*args)
    except Exception:
        try:
            error = cls.__new__(cls, *args)
        except Exception:
            return None
    try:
        error.args = tuple(args)
        vars(error).update(attrs)
    except (TypeError, AttributeError):  # no instance __dict__
        return None
    return error


def _json_field(fields: dict[str, str], key: str, kind: type) -> Any:
    """A JSON reply field of the expected type, else None (absent, or a foreign producer's junk)."""
    raw = fields.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, kind) else None


def _int_field(fields: dict[str, str], key: str, default: int) -> int:
    try:
        return int(fields.get(key) or default)
    except ValueError:
        return default


def decode_error(fields: dict[str, str]) -> Exception:
    """The exception a failed reply stands for: the remote class itself when this process has
    it (:func:`exception_class`), else a :class:`RemoteHandlerError` that answers like it."""
    kind, text = fields.get("error_type") or "Error", fields.get("error", "")
    args = _json_field(fields, "error_args", list)
    if args is None:
        args = [text]
    attrs = _json_field(fields, "error_attrs", dict) or {}
    cls = exception_class(kind)
    if cls is not None:
        error = rebuild_error(cls, args, attrs)
        if error is not None:
            error.add_note(f"raised by a handler in another process (Redis transport): {kind}")
            return error
    retry_after = None
    if fields.get("error_retry_after"):
        try:
            retry_after = float(fields["error_retry_after"])
        except ValueError:
            pass
    info = ErrorInfo(
        status=_int_field(fields, "error_status", 500),
        code=fields.get("error_code") or kind.rpartition(".")[2],
        exit_code=_int_field(fields, "error_exit", 1),
        message=text,
        fields=_json_field(fields, "error_fields", dict) or {},
        retry_after=retry_after,
        internal=fields.get("error_internal") == "1",
    )
    return RemoteHandlerError(kind, text, info, remote_args=args, remote_attrs=attrs)


def decode_reply(fields: dict[str, str]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception to raise)`` from a reply entry."""
    if fields.get("ok") == "1":
        return True, json.loads(fields.get("result") or "null")
    return False, decode_error(fields)


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
        "data": _dumps(jsonable(value)),
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

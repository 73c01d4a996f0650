"""AsyncAPI 3.0 description of the stream transport, generated from the registry.

One channel per domain and priority band (the stream ``{prefix}:stream:{domain}:{band}``, as
the transport names it), carrying the Commands the domain serves and the Events it handles;
the reply stream of each process and the dead-letter stream. Messages are named canonically
(``example.placeorder``); a message's ``payload`` is the entry's ``payload`` field (JSON of the
fields a producer may set), described by the same schemas as OpenAPI's request bodies
(:func:`~bollydog.entrypoint.kit.schemas.message_schemas`); its ``headers`` are the entry's
other fields (docs/distribute.md, "Wire format").

Operations are a bollydog process's: it **sends** each Command to its domain's streams and
receives the reply on its reply stream, and **receives** the streams of the domains it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bollydog.entrypoint.kit.schemas import message_schemas
from bollydog.models.base import CLIENT_SETTABLE_FIELDS, RESERVED_FIELDS, Command, Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage
    from bollydog.types import HubT

__all__ = ["build_asyncapi"]

REF = "#/components/schemas/{model}"
BANDS = ("high", "normal")
_HIDDEN = RESERVED_FIELDS - CLIENT_SETTABLE_FIELDS
_TEXT = {"type": "string"}

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "v": {"type": "string", "const": "1", "description": "Format version."},
        "kind": {"type": "string", "enum": ["command", "event"]},
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "Message id (the reply carries it)."},
        "reply_to": {"type": "string", "description": "Stream key to add the reply to."},
        "deadline": {"type": "string", "description": "Unix seconds after which the entry is dropped unrun."},
        "session": {"type": "string", "description": "JSON session: uid, username, data."},
        "traceparent": {"type": "string", "description": "W3C trace context."},
        "trace_id": _TEXT, "span_id": _TEXT, "parent_span_id": _TEXT,
        "created_time": _TEXT, "created_by": _TEXT, "delivery_count": _TEXT,
        "partials": {"type": "string", "description": "\"1\": send partial results to reply_to first."},
    },
}
_REPLY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "ok"],
    "properties": {
        "v": {"type": "string", "const": "1"},
        "kind": {"type": "string", "const": "partial", "description": "Only on partial-result entries."},
        "id": {"type": "string", "description": "The request's message id."},
        "entry": {"type": "string", "description": "The request's stream entry id."},
        "ok": {"type": "string", "enum": ["1", "0"]},
        "result": {"type": "string", "description": "When ok: the handler's result as JSON."},
        "seq": {"type": "string", "description": "Partial results: their rank."},
        "data": {"type": "string", "description": "Partial results: the value as JSON."},
        "error_type": _TEXT, "error": _TEXT, "error_code": _TEXT, "error_status": _TEXT, "error_exit": _TEXT,
        "error_args": _TEXT, "error_attrs": _TEXT, "error_fields": _TEXT, "error_retry_after": _TEXT,
    },
}
_DEAD_LETTER: dict[str, Any] = {
    "type": "object",
    "description": "The entry's own fields, plus why and where it failed.",
    "properties": {
        "dl_reason": _TEXT, "dl_stream": _TEXT, "dl_time": _TEXT, "dl_id": _TEXT, "name": _TEXT,
    },
}


def build_asyncapi(hub: "HubT", *, title: str = "bollydog", version: str = "0.1.0") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``hub``'s messages over its stream transport.

    Stream keys come from the hub's transport (``transport.stream(domain, band)``); with the
    in-process transport, from the Redis layout with the default prefix ``bollydog``.
    """
    registry = hub.registry
    transport: Any = hub.transport
    stream: Callable[[str, str], str] = getattr(transport, "stream", None) or _default_stream
    prefix = str(getattr(transport, "prefix", "bollydog"))
    routes: dict[str, list[type[BaseMessage]]] = {}  # domain -> its messages
    for served in registry.served_commands():
        where = served.location
        if where is not None and where[0] != "bollydog":
            routes.setdefault(where[0], []).append(served.message)
    for message_type in registry.message_classes():
        if issubclass(message_type, Event):
            domains = {h.app.domain for h in registry.event_handlers(message_type) if h.app is not None}
            for domain in sorted(domains | set(transport.domains_for(message_type))):
                if domain != "bollydog":
                    routes.setdefault(domain, []).append(message_type)
    every = [m for domain in sorted(routes) for m in routes[domain]]
    names, schemas = message_schemas(every, REF, _HIDDEN)
    messages: dict[str, Any] = {}
    for message_type in every:
        canonical = registry.name_of(message_type)
        messages[canonical] = _message(message_type, canonical, names[message_type])
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for domain in sorted(routes):
        own = {registry.name_of(m): {"$ref": f"#/components/messages/{registry.name_of(m)}"} for m in routes[domain]}
        for band in BANDS:
            channel_id = f"{domain}.{band}"
            channels[channel_id] = {
                "address": stream(domain, band),
                "title": f"{domain} ({band} priority)",
                "description": f"Commands and events of domain {domain}; consumer group {domain!r}."
                + (" Messages of priority >= high_priority." if band == "high" else ""),
                "messages": own,
            }
            operations[f"{channel_id}.receive"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"A process running {domain} reads its {band} stream (XREADGROUP).",
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in own],
            }
        for message_type in routes[domain]:
            canonical = registry.name_of(message_type)
            operation: dict[str, Any] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{domain}.normal"},
                "summary": (f"Send {canonical} (XADD)" if issubclass(message_type, Command)
                            else f"Publish {canonical} to a domain handling it (XADD)"),
                "messages": [{"$ref": f"#/channels/{domain}.normal/messages/{canonical}"}],
            }
            if issubclass(message_type, Command):
                operation["reply"] = {
                    "channel": {"$ref": "#/channels/replies"},
                    "messages": [{"$ref": "#/channels/replies/messages/reply"}],
                }
            operations[f"{canonical}.send"] = operation
    channels["replies"] = {
        "address": f"{prefix}:reply:{{consumer}}",
        "title": "Replies",
        "description": "Replies (and partial results) to the requests of one process.",
        "parameters": {"consumer": {"description": "The process's consumer name."}},
        "messages": {"reply": {"$ref": "#/components/messages/bollydog.reply"}},
    }
    channels["deadletters"] = {
        "address": f"{prefix}:deadletter",
        "title": "Dead letters",
        "description": "Entries that could not be handled, with their reason (bollydog deadletters).",
        "messages": {"deadletter": {"$ref": "#/components/messages/bollydog.deadletter"}},
    }
    operations["replies.receive"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/replies"},
        "summary": "A process reads the replies to its requests.",
        "messages": [{"$ref": "#/channels/replies/messages/reply"}],
    }
    messages["bollydog.reply"] = {
        "name": "bollydog.reply", "title": "Reply", "contentType": "application/json",
        "payload": {"$ref": REF.format(model="BollydogReply")},
    }
    messages["bollydog.deadletter"] = {
        "name": "bollydog.deadletter", "title": "Dead letter", "contentType": "application/json",
        "payload": {"$ref": REF.format(model="BollydogDeadLetter")},
    }
    schemas.update(BollydogEnvelope=_ENVELOPE, BollydogReply=_REPLY, BollydogDeadLetter=_DEAD_LETTER)
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title, "version": version,
            "description": "The streams of a bollydog deployment; the wire format is in docs/distribute.md.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
    server = _server(getattr(transport, "url", None))
    if server is not None:
        document["servers"] = {"redis": server}
    return document


def _message(message_type: type["BaseMessage"], canonical: str, schema: str) -> dict[str, Any]:
    kind = "command" if issubclass(message_type, Command) else "event"
    doc = (message_type.__doc__ or "").strip()
    headers = {
        "allOf": [
            {"$ref": REF.format(model="BollydogEnvelope")},
            {"type": "object", "properties": {"name": {"type": "string", "const": canonical},
                                              "kind": {"type": "string", "const": kind}}},
        ]
    }
    message: dict[str, Any] = {
        "name": canonical,
        "title": f"{message_type.__qualname__} ({kind})",
        "contentType": "application/json",
        "headers": headers,
        "payload": {"$ref": REF.format(model=schema)},
    }
    if doc:
        message["summary"] = doc.splitlines()[0]
        message["description"] = doc
    return message


def _default_stream(domain: str, band: str) -> str:
    return f"bollydog:stream:{domain}:{band}"


def _server(url: Any) -> dict[str, Any] | None:
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    server: dict[str, Any] = {
        "host": f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}",
        "protocol": "rediss" if parts.scheme == "rediss" else "redis",
    }
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path
    return server

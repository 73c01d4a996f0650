"""The request handler of one served Command: input, session, trace, dispatch, response.

Per request: rate limit, authenticate, read the fields (query string for GET, JSON or form body
otherwise), build the message with :meth:`~bollydog.models.base.BaseMessage.from_input` inside
the caller's trace (``traceparent``) and session, then one of:

* ``qos=0`` (field, query parameter or ``x-bollydog-qos`` header): queue it, answer 202;
* ``Accept: text/event-stream``: stream ``partial`` events, then ``result`` or ``error``;
* otherwise run it and answer 200 with the result as JSON (sharing a run when debounced).

Every message enters the hub through the kit's admission
(:mod:`bollydog.entrypoint.kit.admission`), as WebSocket and MCP messages do: the queue bound
and the concurrency limit apply, and a refusal (queue full, stopping) is a 503 with
``Retry-After`` before anything runs, streams included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from bollydog.context import current_session, format_traceparent, parse_traceparent, remote_parent
from bollydog.entrypoint.http.responses import (
    JSON,
    RequestError,
    ResultResponse,
    error_response,
    json_response,
)
from bollydog.entrypoint.kit.admission import Call, outcome, run, stream
from bollydog.encoding import dumps
from bollydog.errors import InvalidMessageError

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.http.qos import Debouncer
    from bollydog.entrypoint.http.routes import RouteSpec
    from bollydog.models.base import BaseMessage

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The methods whose fields come from the query string only.
_QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def message_headers(message: "BaseMessage") -> dict[str, str]:
    """``traceparent`` and ``x-bollydog-message-id`` of a response about ``message``."""
    return {
        "traceparent": format_traceparent(message.trace_id, message.span_id),
        "x-bollydog-message-id": message.iid,
    }


def raw_message_headers(message: "BaseMessage") -> list[tuple[bytes, bytes]]:
    """:func:`message_headers` as the raw (bytes) headers of an ASGI response."""
    return [
        (b"traceparent", format_traceparent(message.trace_id, message.span_id).encode("latin-1")),
        (b"x-bollydog-message-id", message.iid.encode("latin-1")),
    ]


def _multi_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in items:
        if key in data:
            previous = data[key]
            data[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[key] = value
    return data


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "PayloadTooLarge", f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "PayloadTooLarge", f"request body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client is gone: nobody reads the answer, and nothing failed on our side (a 4xx,
        # one info line, never a handler failure with a traceback).
        raise RequestError(
            400, "ClientDisconnected", "the client closed the connection before sending the whole body"
        ) from None
    return b"".join(chunks)


def query_fields(query: bytes) -> dict[str, Any]:
    """The fields of a query string, as Starlette's ``request.query_params`` reads it (a
    repeated name gives a list)."""
    text = query.decode("latin-1")
    if "%" in text or "+" in text:
        return _multi_dict(parse_qsl(text, keep_blank_values=True))
    # Nothing to unquote: parse_qsl's own split, without its per-pair unquoting and the
    # multi-dict Starlette builds around it (most of what reading a GET's fields cost).
    return _multi_dict([(name, value) for name, _, value in (pair.partition("=") for pair in text.split("&") if pair)])


async def read_fields(request: Request, limit: int) -> tuple[dict[str, Any], bool]:
    """The message fields of a request and whether they arrived as text (``strings``)."""
    query = request.scope.get("query_string", b"")
    fields = query_fields(query) if query else {}
    if request.method in _QUERY_METHODS:
        return fields, True
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # The body is read (within ``limit``) before any parsing, forms included.
    raw = await read_body(request, limit)
    if content_type in _FORM_TYPES:
        if content_type == _FORM_TYPES[0] and _looks_like_json(raw):
            # `curl -d '{...}'` labels JSON as a form; parsed as one, the whole text would
            # become a field name and the client would get a puzzling 422.
            raise RequestError(
                415, "UnsupportedMediaType",
                f"the body looks like JSON but was sent as '{content_type}' (curl -d does that): "
                "send it with the header 'Content-Type: application/json'",
            )
        body = await _read_form(request, raw)
        textual = True
    else:
        if not raw.strip():
            return fields, True
        if content_type and content_type != JSON and not content_type.endswith("+json"):
            raise RequestError(
                415, "UnsupportedMediaType",
                f"unsupported Content-Type '{content_type}': send application/json or a form",
            )
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(400, "MalformedJSON", f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise RequestError(400, "MalformedJSON", "request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise RequestError(
                400, "MalformedJSON",
                f"request body must be a JSON object of fields, got {type(body).__name__}",
            )
        textual = bool(fields)
    twice = sorted(set(fields) & set(body))
    if twice:
        raise RequestError(400, "DuplicateField", f"fields given in both query and body: {', '.join(twice)}")
    fields.update(body)
    return fields, textual


def _looks_like_json(raw: bytes) -> bool:
    text = raw.strip()
    if text[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


async def _read_form(request: Request, raw: bytes) -> dict[str, Any]:
    """The fields of a form body already read; a malformed form is a 400, not a 500."""

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except HTTPException as exc:  # starlette's parser: no boundary, too many fields...
        raise RequestError(400, "MalformedForm", f"request body is not a valid form: {exc.detail}") from None
    return _multi_dict(list(form.multi_items()))


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


#: What the ``x-bollydog-qos`` header may say.
_QOS_VALUES = ("0", "1", "2")


class MessageEndpoint:
    """Serves one :class:`RouteSpec` (its canonical path and its aliases)."""

    def __init__(self, spec: "RouteSpec", service: "HttpService") -> None:
        self.spec = spec
        self.service = service
        self.context = f"{spec.key} ({spec.path})"

    async def handle(self, request: Request) -> Response:
        service, spec = self.service, self.spec
        settings = service.settings
        message = None
        session_token = None
        admitted = False
        try:
            session = service.auth.session(request.headers)
            if spec.limiter is not None:
                client = session.username or (request.client.host if request.client else "-")
                spec.limiter.check(client)
            scope = request.scope
            if scope["method"] in _QUERY_METHODS:  # no body to read: no coroutine to await
                query = scope.get("query_string", b"")
                fields, textual = (query_fields(query) if query else {}), True
            else:
                fields, textual = await read_fields(request, service.max_body_size)
            # One pass over the raw headers: Starlette's lookup raises and catches a KeyError
            # for each absent one, and most requests carry none of these.
            raw_headers = dict(scope["headers"])
            raw_qos = raw_headers.get(b"x-bollydog-qos")
            if raw_qos is not None:
                qos_header = raw_qos.decode("latin-1")
                # Checked even when a field gives qos (the field wins): a bad header is a 422,
                # as the OpenAPI document's enum says, never silently ignored.
                if qos_header.strip() not in _QOS_VALUES:
                    raise InvalidMessageError(spec.key, [{
                        "field": "x-bollydog-qos", "message": f"must be one of {', '.join(_QOS_VALUES)}",
                        "type": "enum",
                    }])
                fields.setdefault("qos", qos_header)
            session_token = current_session.set(session)
            traceparent = raw_headers.get(b"traceparent")
            if traceparent is None and remote_parent.get() is None:
                message = spec.message.from_input(fields, strings=textual)  # a trace of its own
            else:
                parent_token = remote_parent.set(parse_traceparent(traceparent.decode("latin-1")) if traceparent else None)
                try:
                    message = spec.message.from_input(fields, strings=textual)
                finally:
                    remote_parent.reset(parent_token)
            # From here on the hub reports what goes wrong with the message (a handler's
            # failure is logged once, by the hub); a refusal is answered, not logged.
            admitted = True
            if message.qos == 0:
                return await self._fire_and_forget(message, scope.get("root_path", ""))
            if b"text/event-stream" in raw_headers.get(b"accept", b""):
                return await self._stream(message)
            if spec.debouncer is not None:
                return await self._debounced(spec.debouncer, message, session.username)
            result = await run(service.hub, message)
            return ResultResponse(dumps(result), raw_message_headers(message))
        except Exception as exc:
            headers = message_headers(message) if message is not None else None
            return error_response(
                exc, debug=settings.debug, retry_after=settings.retry_after,
                headers=headers, context=self.context, quiet=admitted,
            )
        finally:
            if session_token is not None:
                current_session.reset(session_token)

    async def _fire_and_forget(self, message: "BaseMessage", root_path: str) -> Response:
        await self.service.hub.put_message(message)
        self.service.outcomes.add(message)
        location = f"{root_path}/_bollydog/messages/{message.iid}"  # below a host's mount point
        headers = message_headers(message)
        headers["location"] = location
        body = {"iid": message.iid, "trace_id": message.trace_id, "status": "accepted", "location": location}
        return json_response(body, 202, headers)

    async def _debounced(self, debouncer: "Debouncer", message: "BaseMessage", username: str | None) -> Response:
        key = (username, message.model_dump_json(include=set(self.spec.message.user_fields())))
        shared = debouncer.join(key)
        if shared is not None:
            result = await outcome(shared)  # a client going away must not cancel the shared run
            headers = message_headers(shared)
            headers["x-bollydog-debounced"] = "true"
            return Response(dumps(result), 200, headers, JSON)
        await self.service.hub.put_message(message)  # refused: nobody joins it
        debouncer.start(key, message)
        result = await outcome(message)
        return ResultResponse(dumps(result), raw_message_headers(message))

    async def _stream(self, message: "BaseMessage") -> Response:
        # Admitted here, before the response starts: a refusal is a plain 503.
        call = await stream(self.service.hub, message)
        headers = message_headers(message)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return StreamingResponse(self._events(call), 200, headers, media_type="text/event-stream")

    async def _events(self, call: Call) -> AsyncIterator[bytes]:
        # The response body runs in another task than the request's; the message, admitted,
        # already carries the request's session and trace.
        settings = self.service.settings
        try:
            async for partial in call.partials():
                yield _sse("partial", partial)
            try:
                result = await call.result()
            except Exception as exc:
                yield _sse("error", _error_event(exc, settings.debug, self.context))
            else:
                yield _sse("result", result)
        finally:
            call.close()  # the client left early: the message finishes unobserved


def _error_event(exc: Exception, debug: bool, context: str) -> dict[str, Any]:
    failure = error_response(exc, debug=debug, context=context, quiet=True)
    body: dict[str, Any] = json.loads(bytes(failure.body))
    body["status"] = failure.status_code
    return body

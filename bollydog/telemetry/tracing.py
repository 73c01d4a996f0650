"""The telemetry dispatch layer: one span and one set of measurements per handler execution.

Span ids are the message's own: the span of a handler execution has the message's ``trace_id``
and ``span_id``, and its parent is the span of the message's ``parent_span_id``. Messages created
inside a handler inherit the trace and take the handler's message as parent, so nested commands,
yielded batches, published events, queued messages and hand-offs become child spans without any
propagation code here. When the parent span is the current one in this process it is used
directly (a local parent, its sampling decision kept); otherwise (the parent came over HTTP,
WebSocket or a transport) the parent is a remote span context built from the ids.

An Event with several handlers is several executions of one message: the first to start gets
the message's span, the others get spans of their own as its children. The same holds for a
message object run twice.

Only ``opentelemetry-api`` is used here; without an SDK-configured tracer this layer is not
installed at all (see :class:`~bollydog.telemetry.plugin.TelemetryPlugin`).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    get_current_span,
    set_span_in_context,
)

from bollydog.errors import HandlerTimeoutError
from bollydog.models.base import Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler
    from bollydog.hub.middleware import Next
    from bollydog.models.base import BaseMessage
    from bollydog.telemetry.metrics import Instruments
    from opentelemetry.util.types import AttributeValue

#: ``(trace_id, span_id)`` as ints for the span about to start (read by the SDK id generator).
pending_ids: ContextVar[tuple[int, int] | None] = ContextVar("bollydog.telemetry.pending_ids", default=None)


class Execution:
    """The handler execution being observed: what :func:`record_retry` reports into."""

    __slots__ = ("message", "retries")

    def __init__(self, message: "BaseMessage") -> None:
        self.message = message
        self.retries = 0


current_execution: ContextVar[Execution | None] = ContextVar("bollydog.telemetry.execution", default=None)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NO_PARENT = otel_context.Context()  # a root message starts its trace whatever span is current
_perf_counter = time.perf_counter
_KINDS: dict[type, SpanKind] = {}  # message class -> span kind (isinstance on pydantic classes is slow)


def span_name(message: "BaseMessage") -> str:
    return f"{message.domain}.{message.name}"


class TelemetryMiddleware:
    """Dispatch layer: a span (if a tracer is bound) and metrics (if instruments are bound).

    Until :meth:`bind` is called, and after ``bind(None, None)``, it passes calls through.
    """

    def __init__(self) -> None:
        self.tracer: Tracer | None = None
        self.instruments: "Instruments | None" = None
        # Messages whose span was started already: a second execution gets a child span.
        self._claimed: weakref.WeakValueDictionary[int, BaseMessage] = weakref.WeakValueDictionary()

    def bind(self, tracer: Tracer | None, instruments: "Instruments | None") -> None:
        self.tracer, self.instruments = tracer, instruments

    def __call__(self, call_next: "Next", message: "BaseMessage", handler: "Handler") -> Any:
        if self.tracer is None and self.instruments is None:
            return call_next(message, handler)
        return self._observe(call_next, message, handler)

    async def _observe(self, call_next: "Next", message: "BaseMessage", handler: "Handler") -> Any:
        tracer, instruments = self.tracer, self.instruments
        execution = Execution(message)
        execution_token = current_execution.set(execution)
        span: Span | None = None
        context_token: Token[otel_context.Context] | None = None
        if tracer is not None:
            span = self._start_span(tracer, message, handler)
            context_token = otel_context.attach(set_span_in_context(span))
        outcome = "ok"
        error: BaseException | None = None
        started = _perf_counter()
        try:
            return await call_next(message, handler)
        except HandlerTimeoutError as exc:
            outcome, error = "timeout", exc
            raise
        except asyncio.CancelledError as exc:
            outcome, error = "cancelled", exc
            raise
        except BaseException as exc:
            outcome, error = "error", exc
            raise
        finally:
            elapsed = _perf_counter() - started
            current_execution.reset(execution_token)
            if context_token is not None:
                otel_context.detach(context_token)
            if span is not None:
                _end_span(span, outcome, error, execution.retries)
            if instruments is not None:
                domain, name = message.domain, message.name
                instruments.count(domain, name, outcome, error)
                instruments.duration.record(
                    elapsed, {"message": f"{domain}.{name}", "domain": domain, "name": name, "outcome": outcome}
                )

    def _start_span(self, tracer: Tracer, message: "BaseMessage", handler: "Handler") -> Span:
        trace_id = int(message.trace_id, 16)
        span_id = int(message.span_id, 16)
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "bollydog",
            "messaging.operation": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": message.domain,
            "messaging.message.id": message.iid,
            "bollydog.message.name": message.name,
            "bollydog.handler": handler.qualname,
        }
        delivery_count = message.delivery_count
        if delivery_count is not None and delivery_count > 1:
            attributes["bollydog.delivery_count"] = delivery_count
        app = handler.app
        if app is not None and app.hub:  # which code ran it, across hot reloads
            attributes["bollydog.code_version"] = app.hub.code_version
        kind = _KINDS.get(type(message))
        if kind is None:
            kind = _KINDS[type(message)] = SpanKind.CONSUMER if isinstance(message, Event) else SpanKind.INTERNAL
        claimed, key = self._claimed, id(message)
        if claimed.get(key) is message:
            # Another execution of this message holds its span: this one is a child of it.
            attributes["bollydog.span.role"] = "additional_handler"
            holder = set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, False, _SAMPLED)))
            return tracer.start_span(span_name(message), context=holder, kind=kind, attributes=attributes)
        claimed[key] = message
        parent: otel_context.Context | None
        parent_span_id = message.parent_span_id
        if parent_span_id is None:
            parent = _NO_PARENT
        else:
            parent_id = int(parent_span_id, 16)
            current = get_current_span().get_span_context()
            if current.span_id == parent_id and current.trace_id == trace_id:
                parent = None  # the parent's span is current here: keep it, with its sampling
            else:
                parent = set_span_in_context(NonRecordingSpan(SpanContext(trace_id, parent_id, True, _SAMPLED)))
        token = pending_ids.set((trace_id, span_id))
        try:
            return tracer.start_span(span_name(message), context=parent, kind=kind, attributes=attributes)
        finally:
            pending_ids.reset(token)


def _end_span(span: Span, outcome: str, error: BaseException | None, retries: int) -> None:
    span.set_attribute("bollydog.outcome", outcome)
    if retries:
        span.set_attribute("bollydog.retries", retries)
    if error is not None:
        span.set_attribute("error.type", type(error).__qualname__)
        if outcome == "cancelled":
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
        else:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()

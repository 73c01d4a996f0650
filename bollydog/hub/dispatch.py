"""Dispatcher: where a message goes, and the one execution path of a handler.

A Command goes to its local handler through the middleware chain (built once per handler:
retries, transaction, deadline, and the layers plugins add), or to the transport when another
process serves it; an Event goes to every local handler, concurrently, and to the transport
when other processes handle it too. :meth:`Dispatcher.invoke` is the innermost step: it sets the
handler's context (message, app, protocol, hub, session) and drives generator handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bollydog.context import AnonymousSession, current_session, handler_frame
from bollydog.errors import EventHandlersError, NoHandlerError, TransportError, brief, describe, log_failure
from bollydog.handlers import ASYNCGEN, Handler, HandlerRegistry
from bollydog.hub.middleware import Middleware, Next, compose
from bollydog.hub.orchestration import drive
from bollydog.models.base import BaseMessage, Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.types import HubT

__all__ = ["Dispatcher"]

log = logging.getLogger("bollydog.hub")

#: A Command's route: its local handler and that handler's chain, or ``(None, None)``.
Route = tuple[Handler | None, Next | None]


class Dispatcher:
    """Routes messages of ``hub`` through ``middlewares`` (outermost first) to their handlers.

    ``compensation()`` is the seconds a cancelled generator handler gets to compensate (see
    :func:`~bollydog.hub.orchestration.drive`). Call :meth:`invalidate` when handlers or layers
    change: chains and routes are cached.
    """

    def __init__(
        self,
        hub: "HubT",
        registry: HandlerRegistry,
        middlewares: list[Middleware],
        compensation: Callable[[], float],
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.middlewares = middlewares
        self._compensation = compensation
        self._pipelines: dict[Handler, Next] = {}
        #: Command class -> route, filled by :meth:`route`; read directly on the hot path.
        self.routes: dict[type, Route] = {}

    def invalidate(self) -> None:
        self._pipelines.clear()
        self.routes.clear()

    def route(self, message_type: type) -> Route:
        """The cached route of a Command class (the execute fast path reads it directly)."""
        route = self.routes.get(message_type)
        if route is None:
            handler = self.registry.commands.get(message_type)
            if handler is None and (successor := self.registry.successor(message_type)) is not None:
                handler = self.registry.commands.get(successor)  # made before a code reload
            route = self.routes[message_type] = (
                (handler, self.pipeline(handler)) if handler is not None else (None, None)
            )
        return route

    def pipeline(self, handler: Handler) -> Next:
        """The middleware chain for ``handler``, built once; layers that declare they do not
        concern it (``applies_to(handler)`` false) are left out."""
        pipeline = self._pipelines.get(handler)
        if pipeline is None:
            layers = [layer for layer in self.middlewares if _applies(layer, handler)]
            pipeline = self._pipelines[handler] = compose(layers, self.invoke)
        return pipeline

    async def dispatch(self, message: BaseMessage) -> Any:
        """Route ``message`` to its local handler(s) or to the transport and return the result."""
        transport = self.hub.transport
        if isinstance(message, Event):
            event_type = self.registry.successor(type(message)) or type(message)  # made before a reload
            handlers = self.registry.event_handlers(event_type)
            if not transport.serves(type(message)):
                return await self.run_event_handlers(message, handlers)
            # Other processes handle it too: a failed publish must not keep the local handlers
            # from running; it is raised once they are done.
            try:
                await transport.publish(message)
            except TransportError as exc:
                await self.run_event_handlers(message, handlers)
                raise exc
            return await self.run_event_handlers(message, handlers)
        handler, pipeline = self.route(type(message))
        if pipeline is not None:
            return await pipeline(message, handler)  # type: ignore[arg-type]
        if transport.serves(type(message)):
            return await transport.request(message)
        raise NoHandlerError(
            f"no handler for {self.registry.name_of(type(message))} "
            f"({type(message).__module__}.{type(message).__qualname__}); "
            "list its module under 'handlers' of an app in the config"
        )

    async def run_event_handlers(self, event: BaseMessage, handlers: tuple[Handler, ...]) -> list[Any]:
        """Run ``handlers`` of ``event`` concurrently; raise :class:`EventHandlersError` (after
        all ran) when some failed."""
        self.hub.waiting.observe(event)  # WaitFor: buffer it, hand it to waits (hub/waiting.py)
        if not handlers:
            return []
        if len(handlers) == 1:
            outcomes = [await self._isolated(event, handlers[0])]
        else:
            outcomes = list(await asyncio.gather(*(self._isolated(event, h) for h in handlers)))
        failures = [o for o in outcomes if isinstance(o, _Failure)]
        if not failures:
            return outcomes
        for failure in failures:
            log_failure(
                log, failure.error, describe(failure.error), "event handler %s failed for %s (%s) trace_id=%s",
                failure.handler.qualname, event.name, event.iid, event.trace_id,
            )
        causes = "; ".join(f"{f.handler.qualname} ({brief(f.error)})" for f in failures)
        raise EventHandlersError(
            f"{len(failures)} of {len(handlers)} handlers of {event.name} failed: {causes}",
            [f.error for f in failures],
        )

    async def _isolated(self, event: BaseMessage, handler: Handler) -> Any:
        try:
            return await self.pipeline(handler)(event, handler)
        except Exception as exc:
            return _Failure(handler, exc)

    async def invoke(self, message: BaseMessage, handler: Handler) -> Any:
        """Run ``handler`` for ``message`` with the handler's context set (innermost layer)."""
        app = handler.app
        hub = self.hub
        token = handler_frame.set((message, app, app.protocol if app is not None else None, hub))
        # No entrypoint set a session (a script, a test): the message and everything it
        # dispatches share an anonymous one (its uid the message's id), so handlers never see None.
        session_token = current_session.set(AnonymousSession(message.iid)) if current_session.get() is None else None
        try:
            started = handler.start(message)
            if handler.kind == ASYNCGEN:
                return await drive(started, message, hub.execute, hub.publish_nowait, self._compensation)
            result = await started
            if isinstance(result, BaseMessage):
                return await hub.execute(result)  # hand-off to the returned message
            return result
        finally:
            handler_frame.reset(token)
            if session_token is not None:
                current_session.reset(session_token)


def _applies(layer: Middleware, handler: Handler) -> bool:
    """A layer concerns every handler unless its ``applies_to(handler)`` says otherwise."""
    applies_to = getattr(layer, "applies_to", None)
    return applies_to is None or bool(applies_to(handler))


class _Failure:
    __slots__ = ("handler", "error")

    def __init__(self, handler: Handler, error: Exception) -> None:
        self.handler, self.error = handler, error



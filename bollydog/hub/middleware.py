"""Layers around one handler execution: retries, timeouts, transactions (telemetry plugs in too).

A middleware is ``layer(call_next, message, handler) -> awaitable result``; a layer with nothing
to do returns ``call_next(message, handler)`` itself, which keeps pass-through layers cheap.
(``call_next`` comes first so that composing is a C-level ``functools.partial``.) The hub composes the
list once, at construction, outermost first; each layer calls ``call_next(message, handler)``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any

from bollydog.errors import HandlerTimeoutError
from bollydog.hub.hooks import Hook
from bollydog.models.base import Event
from bollydog.models.protocol import DuplicateDelivery

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler
    from bollydog.models.base import BaseMessage
    from bollydog.models.protocol import Protocol

log = logging.getLogger("bollydog.hub")

Next = Callable[["BaseMessage", "Handler"], Awaitable[Any]]
Middleware = Callable[..., Awaitable[Any]]


def compose(middlewares: Sequence[Middleware], innermost: Next) -> Next:
    """Fold ``middlewares`` around ``innermost``; the first one listed runs first."""
    call = innermost
    for layer in reversed(middlewares):
        call = functools.partial(layer, call)
    return call


class RetryMiddleware:
    """Re-runs a failed handler until ``message.delivery_count`` deliveries were made.

    The wait doubles after each failure, from ``backoff`` up to ``backoff_max`` seconds.
    """

    def __init__(
        self,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
        retrying: "Hook[[BaseMessage, Handler, int, BaseException, float]] | None" = None,
    ) -> None:
        self.backoff, self.backoff_max = backoff, backoff_max
        #: Reported to before each retry (telemetry): the hub's ``hooks.retrying``.
        self.retrying = retrying if retrying is not None else Hook("retrying")

    def __call__(self, call_next: Next, message: "BaseMessage", handler: "Handler") -> Awaitable[Any]:
        if (message.delivery_count or 1) <= 1:
            return call_next(message, handler)  # pass-through: no extra coroutine frame
        return self._deliver(message, handler, call_next)

    async def _deliver(self, message: "BaseMessage", handler: "Handler", call_next: Next) -> Any:
        deliveries = message.delivery_count or 1
        delay = self.backoff
        for attempt in range(1, deliveries + 1):
            try:
                return await call_next(message, handler)
            except Exception as exc:
                if attempt == deliveries:
                    raise
                log.warning(
                    "%s failed (delivery %d of %d), retrying in %.3fs: %s: %s",
                    message.name, attempt, deliveries, delay, type(exc).__name__, exc,
                )
                if self.retrying:
                    self.retrying(message, handler, attempt, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)


class TimeoutMiddleware:
    """Bounds each delivery by ``message.expire_time`` seconds.

    A handler that finishes without suspending cannot be interrupted, so it is not registered
    at all: the layer runs the next step eagerly and registers a deadline only when it
    suspends, counted from when the delivery started. ``asyncio.timeout`` would arm one loop
    timer per call, which dominates the cost of a fast handler; here deliveries with the same
    ``expire_time`` share a bucket, an insertion-ordered dict whose first entry has the
    earliest deadline (same duration, monotonic clock), and one loop timer serves the earliest
    deadline of all buckets. Registering a delivery is a dict insert; finishing it a delete.
    """

    def __init__(self) -> None:
        self._buckets: dict[float, dict[int, tuple[float, asyncio.Task[Any]]]] = {}
        self._expired: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._keys = itertools.count()

    def __call__(self, call_next: Next, message: "BaseMessage", handler: "Handler") -> Awaitable[Any]:
        limit = message.expire_time
        if not limit:
            return call_next(message, handler)
        return self._bounded(call_next(message, handler), limit, message, handler)

    async def _bounded(self, step: Awaitable[Any], limit: float, message: "BaseMessage", handler: "Handler") -> Any:
        if not isinstance(step, Coroutine):  # a layer returned some other awaitable: no eager start
            step = _awaiting(step)
        started = time.monotonic()
        try:
            suspended_on = step.send(None)
        except StopIteration as done:
            return done.value
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # awaited outside a task (never by the hub): there is nothing to cancel
            return await _resume(step, suspended_on)
        at = loop.time() + limit - (time.monotonic() - started)
        bucket = self._buckets.get(limit)
        if bucket is None:
            bucket = self._buckets[limit] = {}
        key = next(self._keys)
        bucket[key] = (at, task)
        if at < self._timer_at:
            self._arm(loop, at)
        try:
            return await _resume(step, suspended_on)
        except asyncio.CancelledError:
            if key in self._expired:
                self._expired.discard(key)
                if task.uncancel() == 0:
                    raise HandlerTimeoutError(
                        f"{message.domain}.{message.name} ({message.iid}) did not finish within {limit}s "
                        f"(handler {handler.qualname})"
                    ) from None
            raise
        finally:
            if bucket.pop(key, None) is None:
                self._expired.discard(key)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = loop.time()
        earliest = float("inf")
        for limit, bucket in list(self._buckets.items()):
            while bucket:
                key, (at, task) = next(iter(bucket.items()))
                if at > now:
                    earliest = min(earliest, at)
                    break
                del bucket[key]
                self._expired.add(key)
                task.cancel()
            if not bucket:
                del self._buckets[limit]
        if earliest != float("inf"):
            self._arm(loop, earliest)


class TransactionMiddleware:
    """Runs the handler in a unit-of-work scope of its app's protocol.

    Commits when the handler returns, rolls back when it raises (timeouts included), then
    hands the domain events collected by the scope to ``publish`` — only after a commit.
    """

    def __init__(self, publish: Callable[["BaseMessage"], Any]) -> None:
        self.publish = publish

    @staticmethod
    def applies_to(handler: "Handler") -> bool:
        return getattr(handler.app, "protocol", None) is not None

    def __call__(self, call_next: Next, message: "BaseMessage", handler: "Handler") -> Awaitable[Any]:
        protocol = getattr(handler.app, "protocol", None)
        if protocol is None:
            return call_next(message, handler)
        if protocol.unit_of_work.inbox is not None and isinstance(message, Event):
            return self._once(protocol, message, handler, call_next)
        return self._in_scope(protocol, message, handler, call_next)

    async def _in_scope(self, protocol: "Protocol", message: "BaseMessage", handler: "Handler", call_next: Next) -> Any:
        async with protocol.unit_of_work.scope() as scope:
            # Kept on the scope: a durable run records it in this transaction (bollydog/durable).
            result = scope.result = await call_next(message, handler)
        for event in scope.collect_events():
            self.publish(event)
        return result


    async def _once(self, protocol: "Protocol", message: "BaseMessage", handler: "Handler", call_next: Next) -> Any:
        """An Event through an inbox: skipped if this handler's transaction recorded it already,
        else handled and recorded in the same transaction."""
        unit_of_work = protocol.unit_of_work
        inbox = unit_of_work.inbox
        assert inbox is not None
        # Per app and handler: two apps on one database that list one handler module each
        # handle the Event.
        key = f"{getattr(handler.app, 'domain', '')}:{handler.qualname}"
        if await inbox.seen(message.iid, key):
            log.info("%s (%s) was handled by %s already (inbox): not handled again", message.name, message.iid, key)
            return None
        try:
            async with unit_of_work.scope() as scope:
                result = scope.result = await call_next(message, handler)
                await inbox.mark(await unit_of_work.transaction(), message.iid, key)
        except DuplicateDelivery:  # handled meanwhile by another delivery, which committed first
            log.info("%s (%s) was handled by %s meanwhile (inbox): rolled back", message.name, message.iid, key)
            return None
        for event in scope.collect_events():
            self.publish(event)
        return result


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


@types.coroutine
def _resume(step: Coroutine[Any, Any, Any], suspended_on: Any) -> Generator[Any, Any, Any]:
    """Go on awaiting ``step``, a coroutine already started that suspended on ``suspended_on``:
    what ``await`` does, for a coroutine whose first step ran eagerly."""
    while True:
        try:
            sent = yield suspended_on
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # thrown in by the task (a cancellation): pass it down
            try:
                suspended_on = step.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                suspended_on = step.send(sent)
            except StopIteration as done:
                return done.value

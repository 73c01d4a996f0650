"""Admission: how a request's message enters the hub, and how its outcome comes back.

Every entrypoint hands its messages to the hub the same way, through the hub's bounded
admission (:meth:`~bollydog.types.HubT.put_message`, :meth:`~bollydog.types.HubT.submit`):
the queue bound, the concurrency limit and the shutdown apply to HTTP, WebSocket and MCP
alike, and a refusal is a
:class:`~bollydog.errors.QueueFullError` or :class:`~bollydog.errors.HubNotRunningError`
raised at once, which each entrypoint answers its own way (HTTP 503 with ``Retry-After``, a
WebSocket error frame, an MCP ``-32030`` error), all with :func:`retry_after` seconds.

* :func:`run` admits a message and returns its result (or raises its handler's exception),
  in the caller's task when the hub has capacity;
* :func:`stream` listens to a message's partial results, then admits it, and returns a
  :class:`Call` that gives the partial results in order and then the outcome;
* :class:`InFlight` keeps the requests an entrypoint is answering: its stop waits for them,
  and past the hub's grace period :meth:`InFlight.cut` ends them.

A message admitted by :func:`stream` (or ``run(detached=True)``) belongs to the hub: a client
that goes away (a cancelled request) does not cancel it; it completes, and its outcome is
still reported through ``hooks``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from bollydog.errors import describe

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage
    from bollydog.types import HubT

__all__ = ["ANSWER_TIME", "Call", "InFlight", "outcome", "retry_after", "run", "stream"]

#: Seconds requests cut by a shutdown get to send their answer before it goes on without them.
ANSWER_TIME = 1.0

_END = object()  # the end of a Call's partial results


async def run(hub: "HubT", message: "BaseMessage", *, detached: bool = False) -> Any:
    """Admit ``message`` and return its result; its handler's exception propagates.

    A refusal (queue full, hub stopping) raises before anything runs. By default the message
    runs in the caller's task when the hub has capacity (:meth:`~bollydog.types.HubT.submit`:
    no task to create on the hot path), so cancelling the caller cancels it, as only a
    shutdown cut does for an HTTP request. ``detached``: it always runs in a task of the
    hub's, and the caller going away (an MCP client cancelling its call) leaves it running.
    """
    if not detached:
        return await hub.submit(message)
    await hub.put_message(message)
    return await outcome(message)


async def outcome(message: "BaseMessage") -> Any:
    """The result of an admitted ``message`` (its handler's exception raised).

    Cancelling the caller does not cancel the message: others may be waiting for it too (a
    debounced request, a subscriber), and the hub runs it to the end.
    """
    state = message.state
    try:
        return await asyncio.shield(state)
    except asyncio.CancelledError:
        state.add_done_callback(_retrieve)  # nobody awaits it now: no "never retrieved"
        raise


async def stream(hub: "HubT", message: "BaseMessage") -> "Call":
    """Listen to ``message``'s partial results, then admit it; a refusal raises (and nothing
    keeps listening). Iterate :meth:`Call.partials`, then await :meth:`Call.result`."""
    call = Call(message)
    await call.listening()
    try:
        await hub.put_message(message)
    except BaseException:
        call.close()
        raise
    return call


class Call:
    """An admitted message whose partial results are collected from the start.

    The partial results are read from the message by a task of the call's own, so they are
    kept in order whoever consumes them, and in whichever task (an HTTP response body is sent
    by another task than the request's).
    """

    __slots__ = ("message", "_queue", "_registered", "_pump")

    def __init__(self, message: "BaseMessage") -> None:
        self.message = message
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._registered = asyncio.Event()
        self._pump = asyncio.create_task(self._forward(), name="bollydog-partials")

    async def listening(self) -> None:
        """Return once every partial result the message produces from now on is collected."""
        await self._registered.wait()

    async def _forward(self) -> None:
        partials = self.message.stream()
        # Waiters of the event resume after this task suspends, and it suspends only inside
        # the first step of stream() below, after that step registered its listener.
        self._registered.set()
        async for partial in partials:
            self._queue.put_nowait(partial)
        self._queue.put_nowait(_END)

    async def partials(self) -> AsyncIterator[Any]:
        """The partial results, in order, until the message completes (then :meth:`result`
        does not wait)."""
        while (item := await self._queue.get()) is not _END:
            yield item

    async def result(self) -> Any:
        """The message's result, or its handler's exception raised (see :func:`outcome`)."""
        return await outcome(self.message)

    def close(self) -> None:
        """Stop collecting partial results (the consumer is gone); the message still runs."""
        if not self._pump.done():
            self._pump.cancel()


class InFlight:
    """The requests an entrypoint is answering, as tasks: what its stop waits for.

    ``accepting`` is False before start and once stopping (new requests are refused). Past
    the hub's grace period, :meth:`cut` cancels every request left; each one, seeing
    :meth:`was_cut` true in its ``except CancelledError``, answers its client that the service
    stopped (HTTP 503, an error frame, an MCP error) instead of dying silently.
    """

    __slots__ = ("accepting", "cutting", "_tasks", "_idle")

    def __init__(self) -> None:
        self.accepting = False
        self.cutting = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def open(self) -> None:
        """Started: take requests."""
        self.accepting, self.cutting = True, False

    def close(self) -> None:
        """Stopping: refuse new requests; the running ones go on."""
        self.accepting = False

    def add(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` until it is done."""
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._discard)

    def enter(self) -> "asyncio.Task[Any]":
        """Keep the current task until :meth:`leave` (the hot path's :meth:`track`)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - entrypoints always run in tasks
            raise RuntimeError("InFlight.enter() outside a task")
        self._tasks.add(task)
        self._idle.clear()
        return task

    def leave(self, task: "asyncio.Task[Any]") -> None:
        self._discard(task)

    def track(self) -> "_Tracked":
        """``with in_flight.track():`` keeps the current task while the block runs."""
        return _Tracked(self)

    def _discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is left (``timeout`` None: however long it takes); True if so."""
        if not self._tasks:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def drain(self, grace: float | None) -> None:
        """Refuse new requests, give the running ones ``grace`` seconds (None: until they end
        or something else cuts them), then cut the rest and give them :data:`ANSWER_TIME`."""
        self.close()
        if not await self.wait_idle(grace):
            self.cut()
            await self.wait_idle(ANSWER_TIME)

    def cut(self) -> None:
        """Cancel every request still in flight: the shutdown's grace period is over."""
        self.cutting = True
        for task in list(self._tasks):
            task.cancel()

    def was_cut(self, *, stopping: bool = False) -> bool:
        """In a request's ``except CancelledError``: True when the cancellation is :meth:`cut`'s
        (with ``stopping``: any cancellation once stopping, uvicorn's own shutdown timeout
        included), which is then taken back (``uncancel``) so the request can answer."""
        task = asyncio.current_task()
        if not (self.cutting or (stopping and not self.accepting)) or task is None or task not in self._tasks:
            return False
        task.uncancel()
        return True


class _Tracked:
    __slots__ = ("inflight", "task")

    def __init__(self, inflight: InFlight) -> None:
        self.inflight = inflight

    def __enter__(self) -> None:
        self.task = self.inflight.enter()

    def __exit__(self, *exc_info: object) -> None:
        self.inflight.leave(self.task)


def retry_after(error: BaseException, default: int = 1) -> int | None:
    """Whole seconds after which a retry of the refused request may succeed, as every
    entrypoint tells its client (HTTP ``Retry-After``, ``retry_after`` of a WebSocket error
    frame, ``retryAfter`` of an MCP error); None when retrying will not help.

    An error temporary for an unknown time (queue full, stopping) gets ``default``.
    """
    seconds = describe(error).retry_after
    if seconds is None:
        return None
    return max(1, math.ceil(seconds)) if seconds else default


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # the hub logged a failure; this silences "never retrieved"

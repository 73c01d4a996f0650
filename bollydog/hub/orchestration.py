"""Driving async-generator handlers: the orchestration protocol.

What a generator handler may yield, and what it gets back:

- a Command: it is dispatched; its result is sent back, its exception thrown back in;
- an Event: it is published (its handlers run on their own); ``None`` is sent back;
- a :class:`~bollydog.hub.waiting.WaitFor`: the Event (or the list of Events) it waited for is
  sent back, or :class:`~bollydog.errors.WaitTimeoutError` thrown in;
- ``Now()``, ``Random()``, ``NewId()``, ``Sleep(s)`` (:mod:`bollydog.hub.steps`): the time, a
  random number, a new id are sent back, or the sleep happens (a durable run records them);
- a list or tuple of messages: they run concurrently; the list of results is sent back, or a
  :class:`~bollydog.errors.ConcurrentDispatchError` (an ExceptionGroup, catch it with
  ``except*``) is thrown back in when some failed;
- anything else: a partial result, streamed to listeners; the last one is the handler's result.

Cancelled while it waits at a ``yield`` (the hub stopping past its grace period, a timeout), the
generator gets the :class:`asyncio.CancelledError` thrown in at that ``yield``, so that its
``except``/``finally`` can compensate; what it yields then is dispatched as usual, for at most
``compensation_grace`` seconds. The cancellation goes on afterwards, whatever the generator did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from bollydog.errors import ConcurrentDispatchError, brief
from bollydog.hub.steps import LocalStep
from bollydog.hub.waiting import WaitFor
from bollydog.models.base import BaseMessage, Event

log = logging.getLogger("bollydog.hub")

Execute = Callable[[BaseMessage], Awaitable[Any]]
Publish = Callable[[BaseMessage], Any]


async def drive(
    generator: AsyncGenerator[Any, Any],
    message: BaseMessage,
    execute: Execute,
    publish: Publish,
    compensation_grace: float | Callable[[], float] = 0.0,
) -> Any:
    """Run ``generator`` to completion for ``message``; return its last partial result.

    ``compensation_grace`` (seconds, or a function giving them when the cancellation comes)
    bounds what the generator does once cancelled; 0 closes it without compensation.
    """
    try:
        return await _run(generator, message, execute, publish, None, compensation_grace)
    finally:
        try:
            await generator.aclose()
        except Exception as exc:  # e.g. it yields in ``finally`` when closed; keep why the run ended
            log.warning("closing generator handler of %s (%s) failed: %s: %s",
                        message.name, message.iid, type(exc).__name__, exc)


async def _run(
    generator: AsyncGenerator[Any, Any],
    message: BaseMessage,
    execute: Execute,
    publish: Publish,
    error: BaseException | None,
    compensation_grace: float | Callable[[], float],
) -> Any:
    result: Any = None
    reply: Any = None
    while True:
        try:
            if error is not None:
                item, error = await generator.athrow(error), None
            else:
                item = await generator.asend(reply)
        except StopAsyncIteration:
            return result
        reply = None
        try:
            if isinstance(item, Event):
                publish(item)
            elif isinstance(item, WaitFor):
                try:
                    reply = await item.wait()
                except Exception as exc:
                    error = exc
            elif isinstance(item, LocalStep):
                reply = await item.settle(item.value())
            elif isinstance(item, BaseMessage):
                try:
                    reply = await execute(item)
                except Exception as exc:
                    error = exc
            elif _is_message_batch(item):
                reply, error = await _run_concurrently(item, execute)
            else:
                result = item
                message.emit_partial(item)
        except asyncio.CancelledError as cancelled:
            grace = compensation_grace() if callable(compensation_grace) else compensation_grace
            if grace > 0:
                await _compensate(generator, message, execute, publish, cancelled, grace)
            raise


async def _compensate(
    generator: AsyncGenerator[Any, Any],
    message: BaseMessage,
    execute: Execute,
    publish: Publish,
    cancelled: asyncio.CancelledError,
    grace: float,
) -> None:
    """Throw ``cancelled`` in at the generator's ``yield`` and serve what it yields, within
    ``grace`` seconds. Returns when it is done; a further cancellation (a forced stop) ends it."""
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    try:
        async with asyncio.timeout(grace):
            await _run(generator, message, execute, publish, cancelled, 0.0)
    except asyncio.CancelledError:
        if task is not None and task.cancelling() > cancelling:
            raise  # cancelled again while compensating: stop now
        # else the generator let the cancellation through: its compensation is complete
    except TimeoutError:
        log.warning(
            "%s (%s): compensation after cancellation did not finish within %ss "
            "(BOLLYDOG_COMPENSATION_GRACE); abandoned trace_id=%s",
            message.name, message.iid, grace, message.trace_id,
        )
    except Exception as exc:
        log.error(
            "%s (%s): compensation after cancellation failed trace_id=%s: %s: %s",
            message.name, message.iid, message.trace_id, type(exc).__name__, exc, exc_info=exc,
        )


def _is_message_batch(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and len(item) > 0
        and all(isinstance(m, BaseMessage) for m in item)
    )


async def _run_concurrently(
    messages: list[BaseMessage] | tuple[BaseMessage, ...],
    execute: Execute,
) -> tuple[list[Any] | None, BaseException | None]:
    outcomes = await asyncio.gather(*(execute(m) for m in messages), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if not failures:
        return outcomes, None
    # A CancelledError (a BaseException) among outcomes means we are being cancelled ourselves.
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    causes = "; ".join(f"{m.name} ({brief(o)})" for m, o in zip(messages, outcomes) if isinstance(o, Exception))
    return None, ConcurrentDispatchError(
        f"{len(failures)} of {len(messages)} concurrent messages failed: {causes}", failures, outcomes
    )

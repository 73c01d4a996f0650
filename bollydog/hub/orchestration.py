"""Driving async-generator handlers: the orchestration protocol.

What a generator handler may yield, and what it gets back:

- a Command: it is dispatched; its result is sent back, its exception thrown back in;
- an Event: it is published (its handlers run on their own); ``None`` is sent back;
- a list or tuple of messages: they run concurrently; the list of results is sent back, or a
  :class:`~bollydog.errors.ConcurrentDispatchError` (an ExceptionGroup, catch it with
  ``except*``) is thrown back in when some failed;
- anything else: a partial result, streamed to listeners; the last one is the handler's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from bollydog.errors import ConcurrentDispatchError
from bollydog.models.base import BaseMessage, Event


async def drive(
    generator: AsyncGenerator[Any, Any],
    message: BaseMessage,
    execute: Callable[[BaseMessage], Awaitable[Any]],
    publish: Callable[[BaseMessage], Any],
) -> Any:
    """Run ``generator`` to completion for ``message``; return its last partial result."""
    result: Any = None
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                if error is not None:
                    item, error = await generator.athrow(error), None
                else:
                    item = await generator.asend(reply)
            except StopAsyncIteration:
                return result
            reply = None
            if isinstance(item, Event):
                publish(item)
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
    finally:
        await generator.aclose()


def _is_message_batch(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and len(item) > 0
        and all(isinstance(m, BaseMessage) for m in item)
    )


async def _run_concurrently(
    messages: list[BaseMessage] | tuple[BaseMessage, ...],
    execute: Callable[[BaseMessage], Awaitable[Any]],
) -> tuple[list[Any] | None, BaseException | None]:
    outcomes = await asyncio.gather(*(execute(m) for m in messages), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if not failures:
        return outcomes, None
    # A CancelledError (a BaseException) among outcomes means we are being cancelled ourselves.
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    names = ", ".join(m.name for m, o in zip(messages, outcomes) if isinstance(o, Exception))
    return None, ConcurrentDispatchError(
        f"{len(failures)} of {len(messages)} concurrent messages failed: {names}", failures, outcomes
    )

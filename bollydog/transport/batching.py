"""Write coalescing for the Redis transport: many callers' commands, one pipeline round trip."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: A command as callers give it: ``(name, args, kwargs)`` of the redis-py method.
Command = tuple[str, tuple[Any, ...], dict[str, Any]]


@dataclass(slots=True)
class _Pending:
    """The commands of one caller (sent together, in order) and the future of their replies:
    the reply itself for :meth:`PipelineCoalescer.submit` (``single``), else the list."""

    commands: list[Command]
    future: asyncio.Future[Any]
    single: bool


class PipelineCoalescer:
    """Sends the Redis commands submitted during one event-loop iteration in one pipeline.

    Why: under load, each in-flight request did its own XADD round trip and each consumer reply
    its own XADD + XACK + XDEL pipeline, so the transport paid one round trip (and one pooled
    connection) per message where Redis can take dozens per round trip. Why this way: callers
    append ``(command, args, future)`` to a pending list; the first one schedules a flush task,
    whose first step asyncio runs via ``loop.call_soon``: in the next pass of the loop, with no
    timer and no sleep. A lone request is therefore sent about as soon as it would have been
    without coalescing, while the requests that concurrent tasks issue in the same iteration
    (typically all the callers woken by one batch of replies) share one round trip. (A task
    rather than a ``call_soon`` callback that then creates a task: that costs one more loop
    pass, measurable in the sequential request/reply latency.) A flush of a single command sends
    it as a plain command, which costs less than a one-command pipeline.

    Each flush is one ``pipeline(transaction=False)`` executed with ``raise_on_error=False``:
    a command that fails (a ``ResponseError``) fails only its own caller's future; a connection
    error or timeout fails every command of that flush (none of them is known to have been
    applied). Flushes do not wait for each other: a batch is sent while earlier ones are still
    in flight, on another pooled connection. A caller that gave up (its future cancelled) is
    skipped when the results arrive; its command may still have been sent.

    ``timeout`` (seconds, the transport's ``op_timeout``) bounds each flush as a whole: waiting
    for a pooled connection, the write and every reply. Past it the flush's callers get a Redis
    ``TimeoutError`` and its connection is dropped (redis-py disconnects a read cut short).
    """

    def __init__(self, client: Any, timeout: float | None = None) -> None:
        self.client = client  # a redis.asyncio.Redis (pooled)
        self.timeout = timeout
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()

    def _queue(self, commands: list[Command], single: bool) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(commands, future, single))
        if not self._scheduled:  # the task's first step is a loop.call_soon: no timer, no sleep
            self._scheduled = True
            task = loop.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return future

    def submit(self, command: str, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
        """Queue ``client.<command>(*args, **kwargs)`` for the next flush; a future of its reply."""
        return self._queue([(command, args, kwargs)], True)

    async def run(self, *commands: Command) -> list[Any]:
        """Submit ``(command, args, kwargs)`` triples together (one flush, in this order) and
        return their replies; raises the first error once all of them have finished."""
        # One future for all of them: a caller cancelled before the flush cancels all of its
        # commands, never some of them (a reply dropped while its XACK is sent would lose it).
        results: list[Any] = await self._queue(list(commands), False)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False
        batch = [item for item in batch if not item.future.done()]
        if batch:
            await self._execute(batch)

    async def _execute(self, batch: list[_Pending]) -> None:
        commands = batch[0].commands if len(batch) == 1 else [c for item in batch for c in item.commands]
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._send(commands)
        except asyncio.CancelledError:
            for item in batch:
                item.future.cancel()
            raise
        except Exception as exc:  # the whole round trip failed: every caller gets it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        RedisTimeoutError(f"no answer from Redis within {self.timeout}s (op_timeout)")
                        if isinstance(exc, TimeoutError) else exc
                    )
            return
        start = 0
        for item in batch:
            future, end = item.future, start + len(item.commands)
            if not future.done():
                if not item.single:
                    future.set_result(results[start:end])
                elif isinstance(results[start], BaseException):
                    future.set_exception(results[start])
                else:
                    future.set_result(results[start])
            start = end

    async def _send(self, commands: list[Command]) -> list[Any]:
        if len(commands) == 1:  # nothing to share: a plain command costs less than a pipeline
            command, args, kwargs = commands[0]
            try:
                return [await getattr(self.client, command)(*args, **kwargs)]
            except ResponseError as exc:  # the command's own error, as a pipeline reports it
                return [exc]
        async with self.client.pipeline(transaction=False) as pipe:
            for command, args, kwargs in commands:
                getattr(pipe, command)(*args, **kwargs)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

"""Write coalescing for the Redis transport: many callers' commands, one pipeline round trip.

And the round trip itself (:class:`RoundTrip`): commands written in one go on a connection the
caller holds, their replies read and parsed as redis-py parses them. The hot paths (these
flushes and the blocking reads) use it rather than redis-py's pool and pipeline, whose
per-use bookkeeping (a pool checkout with its health check and lock, a task to release the
connection, metrics) cost more CPU than the round trip itself: about 45 of 70 µs for a
three-command pipeline, 25 of 40 µs for one command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Command", "PipelineCoalescer", "RoundTrip"]

#: A command as callers give it: ``(name, args, kwargs)`` of the redis-py method.
Command = tuple[str, tuple[Any, ...], dict[str, Any]]

#: Idle connections a coalescer keeps for its next flushes; beyond, they go back to the pool.
_KEEP = 4

#: Acknowledgements that the callers of one flush share: command -> how many leading arguments
#: name its target (``XACK stream group``, ``XDEL stream``); the rest are entry ids.
_MERGEABLE = {"xack": 2, "xdel": 1}


def _merge(commands: list[Command]) -> tuple[list[Command], list[int]]:
    """The commands to send for ``commands``, and where each one's reply is among theirs.

    The XACKs (and XDELs) of one stream become one command carrying every id, sent after the
    other commands: what Redis does per id is the same, an acknowledgement still follows the
    reply it goes with, and a flush of 32 replies sends 34 commands, not 96. Each caller gets
    the shared command's reply (or error) for its own."""
    sent: list[Command] = []
    slots: list[int] = []  # >= 0: index in sent; < 0: -1 - index in tail
    tail: list[tuple[str, tuple[Any, ...], list[Any]]] = []
    merged: dict[tuple[str, tuple[Any, ...]], int] = {}
    for command, args, kwargs in commands:
        width = _MERGEABLE.get(command)
        if width is None or kwargs:
            slots.append(len(sent))
            sent.append((command, args, kwargs))
            continue
        key = (command, args[:width])
        index = merged.get(key)
        if index is None:
            index = merged[key] = len(tail)
            tail.append((command, args[:width], []))
        tail[index][2].extend(args[width:])
        slots.append(-1 - index)
    base = len(sent)
    sent.extend((command, (*target, *ids), {}) for command, target, ids in tail)
    return sent, [slot if slot >= 0 else base - 1 - slot for slot in slots]


class RoundTrip:
    """Sends commands of ``client`` (a ``redis.asyncio.Redis``) on a connection the caller
    holds: one write, then each reply read and parsed by the client (its response callbacks,
    its decoding). A command Redis rejects gives its ``ResponseError`` in its place; any other
    failure (or a cancellation) drops the connection, since a reply may be left unread on it,
    and raises. A dropped connection reconnects when it is used again."""

    __slots__ = ("client", "_recorder")

    def __init__(self, client: Any) -> None:
        self.client = client
        # A pipeline only records: it turns each call into its arguments and options, the
        # same as redis-py sends; it is never executed.
        self._recorder = client.pipeline(transaction=False)

    async def __call__(self, connection: Any, commands: list[Command]) -> list[Any]:
        recorder = self._recorder
        recorder.command_stack = []
        for command, args, kwargs in commands:
            getattr(recorder, command)(*args, **kwargs)
        stack, recorder.command_stack = recorder.command_stack, []
        parse = self.client.parse_response
        try:
            await connection.send_packed_command(connection.pack_commands([args for args, _ in stack]))
            results: list[Any] = []
            for args, options in stack:
                try:
                    results.append(await parse(connection, args[0], **options))
                except ResponseError as exc:
                    results.append(exc)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        return results


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
    pass, measurable in the sequential request/reply latency.) When nothing is in flight nor
    queued and a connection is idle, :meth:`run` does not wait for that pass: it sends its
    commands at once, from its caller's task (a lone request, a lone reply: the sequential
    case, where that pass and the flush task were a tenth of the latency); whatever comes
    meanwhile is queued and shares the next flush.

    Each flush is one :class:`RoundTrip` on a connection the coalescer leased from the client's
    pool (kept for the next flushes, up to a few idle ones): a command that fails (a
    ``ResponseError``) fails only its own caller's future; a connection error or timeout fails
    every command of that flush (none of them is known to have been applied). A connection
    error on a connection used before is retried once, reconnected (it may be stale after a
    Redis restart), as redis-py's pool retries. Flushes do not wait for each other: a batch is
    sent while earlier ones are still in flight, on another connection. A caller that gave up
    (its future cancelled) is skipped when the results arrive; its command may still have been
    sent.

    ``timeout`` (seconds, the transport's ``op_timeout``) bounds each flush as a whole: waiting
    for a pooled connection, the write and every reply. Past it the flush's callers get a Redis
    ``TimeoutError`` and its connection is dropped (redis-py disconnects a read cut short).
    """

    def __init__(self, client: Any, timeout: float | None = None) -> None:
        self.client = client  # a redis.asyncio.Redis (pooled)
        self.timeout = timeout
        self._trip = RoundTrip(client)
        self._idle: list[Any] = []  # leased connections waiting for the next flush
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()
        self._busy = 0  # round trips in flight

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
        if self._pending or self._busy or not self._idle:
            results: list[Any] = await self._queue(list(commands), False)
        else:  # nothing to share a round trip with: send now (one write, all or nothing)
            item = _Pending(list(commands), asyncio.get_running_loop().create_future(), False)
            await self._execute([item])
            results = item.future.result()
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
        slots: list[int] | None = None
        if len(batch) == 1:
            commands = batch[0].commands
        else:
            commands, slots = _merge([c for item in batch for c in item.commands])
        self._busy += 1
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._send(commands)
            if slots is not None:
                results = [results[slot] for slot in slots]
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
        finally:
            self._busy -= 1
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

    async def close(self) -> None:
        """Disconnect the idle connections (used again, they reconnect)."""
        for connection in self._idle:
            await connection.disconnect()

    async def _send(self, commands: list[Command]) -> list[Any]:
        idle = self._idle
        reused = bool(idle)
        connection = idle.pop() if reused else await self.client.connection_pool.get_connection()
        try:
            try:
                return await self._trip(connection, commands)
            except RedisConnectionError:
                if not reused:
                    raise
                # Dropped by the round trip; it reconnects: once more, as the pool's retry did.
                return await self._trip(connection, commands)
        finally:
            if len(idle) < _KEEP:
                idle.append(connection)
            else:
                await self.client.connection_pool.release(connection)

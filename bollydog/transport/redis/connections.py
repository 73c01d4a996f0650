"""The Redis transport's connections, the blocking readers stop can wake, and reconnect backoff.

One bounded pool serves every command; hot-path writes go through a
:class:`~bollydog.transport.batching.PipelineCoalescer`, on connections it leases from the pool.
``op_timeout`` bounds each round trip as a whole (:meth:`Connections.bounded`, the coalescer's
flush, a blocking read), not each socket operation: redis-py's ``socket_timeout`` (5 s unless
told otherwise) wraps every write in ``asyncio.wait_for`` (a task and a loop pass per command)
and every reply in a timer of its own. Each blocking reader (``XREAD`` / ``XREADGROUP ...
BLOCK``) has a connection of its own, whose ``CLIENT ID`` lets a stopping service wake it with
``CLIENT UNBLOCK``: a read cut short by a cancellation drops its connection, and may lose
entries Redis already handed over. :class:`ReaderService` is the service shape of such a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from mode import Service

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - exercised by the missing-extra test
    from bollydog.errors import MissingDependencyError

    raise MissingDependencyError("the Redis transport", "redis", "redis") from None

_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the redis extra brings hiredis
    _hiredis_pack = None

from bollydog.transport.batching import PipelineCoalescer, RoundTrip
from bollydog.transport.redis.options import RedisOptions

__all__ = [
    "ENTRY_ERRORS", "NETWORK_ERRORS", "Backoff", "BlockingReader", "Connections", "Outage", "ReaderService", "no_answer",
]

log = logging.getLogger("bollydog.transport.redis")

#: How entries that are not UTF-8 are decoded: their invalid bytes become lone surrogates,
#: which :func:`bollydog.transport.wire.decode` refuses (and which encode back to those bytes).
ENTRY_ERRORS = "surrogateescape"

#: What a lost or unreachable server raises.
NETWORK_ERRORS = (RedisError, OSError)


def no_answer(seconds: float, option: str = "op_timeout") -> RedisTimeoutError:
    """The error of a round trip that got no answer in time (a :data:`NETWORK_ERRORS` one)."""
    return RedisTimeoutError(f"no answer from Redis within {seconds}s ({option})")


class Backoff:
    """How long to wait after a failed attempt: ``first`` seconds, doubling up to ``cap``, back
    to ``first`` once an attempt succeeds. One per reconnecting loop."""

    __slots__ = ("first", "cap", "_delay")

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap = first, max(first, cap)
        self._delay = first

    def next(self) -> float:
        """The wait before the next attempt (and double the one after)."""
        delay = self._delay
        self._delay = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        """An attempt succeeded."""
        self._delay = self.first


class Outage:
    """What one reconnecting loop logs: a warning when Redis is first lost, debug lines for the
    attempts after it, an info line once it is back; not a line per attempt."""

    __slots__ = ("what", "_since")

    def __init__(self, what: str) -> None:
        self.what = what
        self._since: float | None = None  # monotonic time the outage began; None: connected

    def failed(self, exc: BaseException, delay: float) -> None:
        """An attempt failed; the next one in ``delay`` seconds."""
        if self._since is None:
            self._since = time.monotonic()
            log.warning("%s: %s: %s; reconnecting (every %.2fs at most, logged once until it is back)",
                        self.what, type(exc).__name__, exc, delay)
        else:
            log.debug("%s: %s: %s; retrying in %.2fs", self.what, type(exc).__name__, exc, delay)

    def recovered(self) -> None:
        """An attempt succeeded."""
        if self._since is not None:
            log.info("%s: reconnected after %.1fs", self.what, time.monotonic() - self._since)
            self._since = None


class BlockingReader:
    """One loop's connection for blocking reads, and the client id that wakes it.

    The connection is the reader's own (made by its client's pool, never pooled), used through
    a :class:`~bollydog.transport.batching.RoundTrip`: no pool checkout, lock or retry per read.
    """

    __slots__ = ("name", "client", "client_id", "limit", "connection", "_trip")

    def __init__(self, name: str, client: Any, limit: float) -> None:
        self.name = name
        self.client = client  # a redis.asyncio.Redis: how commands are built and parsed
        self.connection: Any = client.connection_pool.make_connection()  # connects on first use
        self.client_id: int | None = None  # learnt on (re)connecting; None: not blocked in a read
        self.limit = limit  # seconds a read may take: its BLOCK plus op_timeout
        self._trip = RoundTrip(client)

    async def read(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<command>(...)``, a blocking read: learn the connection's id first, so
        that :meth:`Connections.wake` can interrupt it. A read that gets no answer within
        :attr:`limit` (a server gone silent) raises a Redis ``TimeoutError``; its connection
        is dropped and the next read reconnects."""
        try:
            async with asyncio.timeout(self.limit):
                if self.client_id is None:
                    (client_id,) = await self._trip(self.connection, [("client_id", (), {})])
                    self.client_id = int(client_id)
                (result,) = await self._trip(self.connection, [(command, args, kwargs)])
        except TimeoutError:
            self.client_id = None
            raise no_answer(self.limit, "block_ms + op_timeout") from None
        except BaseException:
            self.client_id = None  # the connection may be gone; the next read learns the new id
            raise
        if isinstance(result, ResponseError):
            raise result
        return result

    async def close(self) -> None:
        self.client_id = None
        try:
            await self.connection.disconnect()
            await self.client.aclose()
        except NETWORK_ERRORS:  # pragma: no cover - best effort
            pass


class _HiredisPacking(aioredis.Connection):
    """A TCP connection whose commands hiredis packs. redis-py's asyncio connection packs them
    in Python (its synchronous one uses hiredis), a third of a busy consumer's CPU. What hiredis
    cannot pack (text holding lone surrogates: an entry written back as it was read) is packed
    the Python way, with the connection's encoding errors."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if _hiredis_pack is None or not isinstance(name, (str, bytes)) or " " in str(name):
            return super().pack_command(*args)  # a multi-word command name: redis-py splits it
        try:
            return [_hiredis_pack(args)]
        except (TypeError, UnicodeEncodeError):
            return super().pack_command(*args)


def _connection_class(url: str) -> dict[str, Any]:
    """``connection_class`` for a plain TCP URL; TLS and Unix-socket URLs keep redis-py's."""
    return {"connection_class": _HiredisPacking} if url.startswith("redis://") else {}


class Connections:
    """The command client (a bounded pool), its write coalescer, and the blocking readers.

    Nothing connects before the first command. :meth:`close` disconnects everything; the
    clients reconnect if used again (the dead-letter commands of the CLI do so).
    """

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        # A bounded pool: beyond max_connections commands wait (op_timeout at most) for a free
        # connection. One quick retry: a pooled connection may be stale after a Redis restart.
        # socket_timeout=None (redis-py's default is 5s): op_timeout bounds each round trip
        # instead (see the module doc).
        # encoding_errors="surrogateescape" (here and on the consumers' readers): an entry that
        # is not UTF-8 is read, not a UnicodeDecodeError out of the read loops, with its invalid
        # bytes kept as lone surrogates, so that the envelope check (wire.decode) dead-letters it
        # naming the field, and the dead letter written back holds the original bytes.
        pool = aioredis.BlockingConnectionPool.from_url(
            options.url, max_connections=options.max_connections, timeout=options.op_timeout,
            decode_responses=True, encoding_errors=ENTRY_ERRORS, socket_connect_timeout=options.op_timeout,
            socket_timeout=None, retry=Retry(NoBackoff(), 1), **_connection_class(options.url),
        )
        self.client: Any = aioredis.Redis.from_pool(pool)
        self.writes = PipelineCoalescer(self.client, options.op_timeout)
        self._readers: dict[str, BlockingReader] = {}

    def reader(self, name: str, encoding_errors: str = ENTRY_ERRORS) -> BlockingReader:
        """The blocking-read connection of loop ``name`` (made on first use); ``encoding_errors``:
        how it decodes what is not UTF-8."""
        reader = self._readers.get(name)
        if reader is None:
            options = self.options
            client = aioredis.Redis.from_url(
                options.url, decode_responses=True, encoding_errors=encoding_errors,
                socket_connect_timeout=options.op_timeout, socket_timeout=None, retry=Retry(NoBackoff(), 0),
                **_connection_class(options.url),
            )
            reader = self._readers[name] = BlockingReader(name, client, options.block + options.op_timeout)
        return reader

    @contextlib.asynccontextmanager
    async def bounded(self) -> AsyncIterator[None]:
        """Bound the round trips inside to ``op_timeout`` (a Redis ``TimeoutError`` past it):
        what redis-py's socket timeout did for each command of the pool."""
        try:
            async with asyncio.timeout(self.options.op_timeout):
                yield
        except TimeoutError:
            raise no_answer(self.options.op_timeout) from None

    async def wake(self, *readers: BlockingReader) -> None:
        """Interrupt the blocking reads of ``readers`` (``CLIENT UNBLOCK``); best effort."""
        ids = [r.client_id for r in readers if r.client_id is not None]
        if not ids:
            return
        try:
            async with asyncio.timeout(self.options.op_timeout):
                async with self.client.pipeline(transaction=False) as pipe:
                    for client_id in ids:
                        pipe.client_unblock(client_id)
                    await pipe.execute()
        except (*NETWORK_ERRORS, TimeoutError):
            pass

    async def close(self) -> None:
        """Close every connection (a client used again reconnects: a restarted service)."""
        for reader in self._readers.values():
            await reader.close()
        try:
            await self.writes.close()
            await self.client.aclose()
        except NETWORK_ERRORS:  # pragma: no cover - best effort
            pass


class ReaderService(Service):
    """A service whose one loop (:meth:`run`) blocks on reads of a connection of its own.

    The loop is a task of the service (started and cancelled by mode). It checks
    ``should_stop`` between reads. Stopping wakes its read (``CLIENT UNBLOCK``) and waits up to
    one block period for the loop to return by itself; a read that ignored the wake-up ends with
    its connection; mode then cancels whatever is left.
    """

    mundane_level = "debug"

    #: How its reads decode what is not UTF-8 (:meth:`Connections.reader`).
    encoding_errors = ENTRY_ERRORS

    def __init__(self, connections: Connections, name: str) -> None:
        super().__init__()
        self.connections = connections
        self.reader = connections.reader(name, self.encoding_errors)
        self._returned = asyncio.Event()
        self._returned.set()  # until the loop runs: a stop before then waits for nothing

    async def run(self) -> None:
        """The loop; return once ``should_stop``."""
        raise NotImplementedError

    def stopping(self) -> bool:
        """``should_stop``, read afresh (a method: type checkers do not carry a narrowed value
        of it across the awaits of a loop)."""
        return bool(self.should_stop)

    @property
    def reading(self) -> bool:
        """Whether the loop runs: started and not returned (nor crashed)."""
        return self.started and not self._returned.is_set() and not self.crashed

    @Service.task
    async def _run(self) -> None:
        self._returned.clear()
        try:
            await self.run()
        finally:
            self._returned.set()

    async def on_stop(self) -> None:
        await self.connections.wake(self.reader)
        try:
            async with asyncio.timeout(self.connections.options.block + 0.5):
                await self._returned.wait()
        except TimeoutError:
            log.debug("%s did not return after a wake-up; closing its connection", self.reader.name)
            await self.reader.close()

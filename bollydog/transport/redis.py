"""RedisTransport: Commands and Events between processes over Redis Streams.

Layout (``prefix`` defaults to ``bollydog``)::

    {prefix}:stream:{domain}:high     messages of priority >= high_priority
    {prefix}:stream:{domain}:normal   the others; consumer group "{domain}" on both
    {prefix}:reply:{consumer}         replies to this process's requests (one reader task)
    {prefix}:deadletter               entries that could not be handled, with their reason
    {prefix}:done:{domain}:{id}       processed ids (only with dedup_ttl > 0)
    {prefix}:consumers:{domain}       live consumers of the domain (heartbeats, see liveness.py)

Every process hosting a domain reads its streams in the domain's consumer group, so N processes
share the load. An entry is acknowledged once its handler finished and its reply was sent (XADD
reply, XACK, XDEL in one round trip). Writes on the hot paths (request XADDs, publishes, replies
and acknowledgements) go through a PipelineCoalescer: what concurrent tasks write in one event-loop
iteration shares one pipeline. A consumer that dies leaves its entries pending; another one
claims them with XAUTOCLAIM once they are idle for ``claim_idle`` seconds. Entries delivered more
than ``max_deliveries`` times, and entries that are not valid envelopes, go to the dead-letter
stream. Handler exceptions are replies, not redeliveries. A request for a domain with no live
consumer is refused (NoConsumerError) rather than sent, unless its class waits for one. Partial
results of a remote generator handler come back on the reply stream before the reply, when the
caller listens to them (partials.py). See docs/distribute.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bollydog.errors import (
    ConfigError,
    EventHandlersError,
    HandlerTimeoutError,
    HubNotRunningError,
    MissingDependencyError,
    NoConsumerError,
    TransportError,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError, ResponseError
except ImportError:  # pragma: no cover - exercised by the missing-extra test
    raise MissingDependencyError("the Redis transport", "redis", "redis") from None

from bollydog.context import current_session, new_trace_id
from bollydog.hub.hooks import DeadLetter
from bollydog.hub.transport import Transport
from bollydog.models.base import BaseMessage, Event
from bollydog.names import MessageFilter
from bollydog.settings import get_settings
from bollydog.transport import wire
from bollydog.transport.batching import PipelineCoalescer
from bollydog.transport.liveness import Liveness
from bollydog.transport.partials import PartialRelay, PartialSink, Write

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.service.app import HubService

log = logging.getLogger("bollydog.transport.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
HIGH, NORMAL = "high", "normal"
_NETWORK_ERRORS = (RedisError, OSError)


def _patterns(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, Iterable):
        return tuple(str(p) for p in value)
    raise ConfigError(f"distribute.{key}: expected a list of 'domain.name' patterns, got {value!r}")


class RedisTransport(Transport):
    """Redis Streams transport. Options (all optional) come from the config section:

    ``url``, ``prefix``, ``consumer`` (name in the groups; set a stable one per instance to
    resume its own pending entries after a restart), ``concurrency`` (handlers in flight),
    ``batch`` (entries per read), ``block_ms``, ``claim_idle`` and ``claim_interval``
    (seconds), ``max_deliveries``, ``maxlen`` (approximate stream cap, None for none),
    ``delete_acked``, ``dedup_ttl`` (seconds, 0 = off), ``reply_maxlen``, ``high_priority``,
    ``accept``/``reject`` (fnmatch patterns on ``domain.name``), ``op_timeout``,
    ``reconnect_backoff``/``reconnect_backoff_max``, ``deadletter_maxlen``, ``grace``,
    ``max_connections`` (command connections; blocking readers have their own),
    ``consumer_ttl`` (seconds a consumer's heartbeat lasts), ``liveness_cache`` (seconds a
    producer trusts "this domain has a live consumer"), ``wait_for_consumer`` (queue every
    command even when its domain has no live consumer, as if each class set it).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "bollydog",
        consumer: str | None = None,
        concurrency: int = 64,
        batch: int = 32,
        block_ms: int = 2000,
        claim_idle: float = 30.0,
        claim_interval: float | None = None,
        max_deliveries: int = 5,
        maxlen: int | None = 1_000_000,
        delete_acked: bool = True,
        dedup_ttl: float = 0,
        reply_maxlen: int = 10_000,
        high_priority: int = 1,
        accept: Any = ("*",),
        reject: Any = (),
        op_timeout: float = 5.0,
        reconnect_backoff: float = 0.1,
        reconnect_backoff_max: float = 5.0,
        deadletter_maxlen: int | None = 100_000,
        grace: float | None = None,
        max_connections: int = 64,
        consumer_ttl: float = 5.0,
        liveness_cache: float = 0.5,
        wait_for_consumer: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"distribute: unknown RedisTransport option(s) {', '.join(sorted(unknown))}; "
                "see docs/distribute.md for the options"
            )
        super().__init__()
        try:
            self.url = url or os.environ.get("BOLLYDOG_REDIS_URL") or DEFAULT_URL
            self.prefix = str(prefix)
            self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
            self.concurrency = max(1, int(concurrency))
            self.batch = max(1, int(batch))
            self.block_ms = max(1, int(block_ms))
            self.claim_idle = float(claim_idle)
            self.claim_interval = float(claim_interval) if claim_interval else max(0.05, self.claim_idle / 2)
            self.max_deliveries = max(1, int(max_deliveries))
            self.maxlen = int(maxlen) if maxlen not in (None, "", 0, "0") else None
            self.delete_acked = str(delete_acked).lower() not in ("false", "0", "no")
            self.dedup_ttl = float(dedup_ttl or 0)
            self.reply_maxlen = int(reply_maxlen)
            self.high_priority = int(high_priority)
            self.op_timeout = float(op_timeout)
            self.reconnect_backoff = float(reconnect_backoff)
            self.reconnect_backoff_max = float(reconnect_backoff_max)
            self.deadletter_maxlen = int(deadletter_maxlen) if deadletter_maxlen else None
            self.grace = None if grace is None else float(grace)
            self.max_connections = max(2, int(max_connections))
            self.consumer_ttl = max(0.1, float(consumer_ttl))
            self.liveness_cache = max(0.0, float(liveness_cache))
            self.wait_for_consumer = str(wait_for_consumer).lower() in ("true", "1", "yes")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"distribute: invalid RedisTransport option: {exc}") from None
        self.accept = _patterns(accept, "accept") or ("*",)
        self.reject = _patterns(reject, "reject")
        self._filter = MessageFilter(self.accept, self.reject)
        self.options = {"url": self.url, "prefix": self.prefix, "consumer": self.consumer}
        self.reply_key = f"{self.prefix}:reply:{self.consumer}"
        self.deadletter_key = f"{self.prefix}:deadletter"
        self.liveness = Liveness(self.prefix, self.consumer, self.consumer_ttl, self.liveness_cache)

        self._redis: Any = None  # commands (bounded by op_timeout)
        self._writes: PipelineCoalescer | None = None  # hot-path writes on _redis, coalesced
        # Each blocking reader (XREAD/XREADGROUP BLOCK) has a connection of its own, whose
        # CLIENT ID lets stop() wake it with CLIENT UNBLOCK: cancelling a read in progress is
        # unreliable in redis-py (the cancellation can be swallowed by its read timeout).
        self._readers: dict[str, list[Any]] = {}  # name -> [client, client id or None]
        self._hub: HubService | None = None
        self._hosted: list[str] = []
        self._stopping = False
        self._replies_done = False  # set after stopping's grace: in-flight handlers may still request
        self._tasks: list[asyncio.Task] = []  # readers and claimers
        self._inflight: dict[asyncio.Task, list[Any]] = {}  # task -> [stream, domain, entry, touched]
        self._inflight_ids: set[tuple[str, str]] = set()
        self._capacity: asyncio.Event | None = None
        self._waiting: dict[str, asyncio.Future] = {}
        self._sinks: dict[str, PartialSink] = {}  # message id -> its caller, for requests streamed
        self._reply_task: asyncio.Task | None = None
        self._routes: dict[type, tuple[str, ...]] = {}
        self._accepted: dict[str, bool] = {}

    # -- naming ----------------------------------------------------------------------------------

    def stream(self, domain: str, band: str = NORMAL) -> str:
        return f"{self.prefix}:stream:{domain}:{band}"

    def _band(self, priority: int) -> str:
        return HIGH if priority >= self.high_priority else NORMAL

    def _done_key(self, domain: str, message_id: str) -> str:
        return f"{self.prefix}:done:{domain}:{message_id}"

    # -- routing (producer side) -----------------------------------------------------------------

    def add_remote(self, domain: str, message_types: Iterable[type[BaseMessage]]) -> None:
        super().add_remote(domain, message_types)
        self._routes.clear()

    def _domains_for(self, message_type: type) -> tuple[str, ...]:
        domains = self._routes.get(message_type)
        if domains is None:
            found: set[str] = set(self.remote.get(message_type, ()))
            if issubclass(message_type, Event):  # handlers of a base Event class see subclasses
                for klass in message_type.__mro__[1:]:
                    if isinstance(klass, type) and issubclass(klass, Event):
                        found |= self.remote.get(klass, set())
            domains = self._routes[message_type] = tuple(sorted(found))
        return domains

    def serves(self, message_type: type[BaseMessage]) -> bool:
        return bool(self._domains_for(message_type))

    # -- connections -----------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._redis is not None:
            return
        # A bounded pool: beyond max_connections commands wait (op_timeout at most) for a free
        # connection. One quick retry: a pooled connection may be stale after a Redis restart.
        # encoding_errors="replace" (here and on the readers): an entry that is not UTF-8 must
        # reach the dead-letter stream, not raise UnicodeDecodeError out of the read loops.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=self.op_timeout, decode_responses=True,
            encoding_errors="replace", socket_connect_timeout=self.op_timeout, socket_timeout=self.op_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._writes = PipelineCoalescer(self._redis)

    async def close(self) -> None:
        """Close the connections (``stop`` does it too)."""
        clients = [self._redis, *(slot[0] for slot in self._readers.values())]
        self._readers.clear()
        self._redis = None
        self._writes = None
        for client in clients:
            if client is not None:
                try:
                    await client.aclose()
                except _NETWORK_ERRORS:  # pragma: no cover - best effort
                    pass

    def _reader(self, name: str) -> list[Any]:
        """The dedicated blocking-read connection of reader ``name``: ``[client, client id]``."""
        slot = self._readers.get(name)
        if slot is None:
            client = aioredis.Redis.from_url(
                self.url, single_connection_client=True, decode_responses=True, encoding_errors="replace",
                socket_connect_timeout=self.op_timeout, socket_timeout=self.block_ms / 1000 + self.op_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            slot = self._readers[name] = [client, None]
        return slot

    async def _blocking_call(self, slot: list[Any], method: str, *args: Any, **kwargs: Any) -> Any:
        if slot[1] is None:  # (re)connected: learn the id CLIENT UNBLOCK needs
            slot[1] = await slot[0].client_id()
        try:
            return await getattr(slot[0], method)(*args, **kwargs)
        except BaseException:
            slot[1] = None
            raise

    async def _wake_readers(self) -> None:
        ids = [slot[1] for slot in self._readers.values() if slot[1] is not None]
        if not ids or self._redis is None:
            return
        try:
            async with asyncio.timeout(self.op_timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for client_id in ids:
                        pipe.client_unblock(client_id)
                    await pipe.execute()
        except (*_NETWORK_ERRORS, TimeoutError):
            pass

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, hub: "HubService") -> None:
        if self.accept != ("*",) or self.reject:
            self._filter.check(hub.registry.names(), "distribute", hub.registry.unloaded_domains())
        self._hub = hub
        self._stopping = False
        self._replies_done = False
        self._connect()
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._hosted = [d for d in hub.apps if d != "bollydog"]
        # Announced before start returns: once this process is up, producers send it work.
        await self._announce(self._hosted)
        for domain in self._hosted:
            self._tasks.append(asyncio.create_task(self._consume(domain), name=f"bollydog-redis-consume-{domain}"))
            self._tasks.append(asyncio.create_task(self._reclaim(domain), name=f"bollydog-redis-reclaim-{domain}"))
        if self._hosted:
            log.info("consuming %s from %s as %s", ", ".join(self._hosted), self.url, self.consumer)

    async def stop(self) -> None:
        self._stopping = True
        await self._withdraw(self._hosted)  # producers refuse new requests unless another consumer lives
        for task in self._tasks:
            if task.get_name().startswith("bollydog-redis-reclaim"):
                task.cancel()  # asleep between rounds
        await self._wake_readers()
        await self._settle(list(self._tasks))
        self._tasks.clear()
        # The reply reader runs on while in-flight handlers finish: one that sends a command to
        # another domain (an orchestration) must get its reply, or it would run again elsewhere.
        if self._inflight:
            grace = self.grace
            if grace is None:
                grace = getattr(self._hub, "shutdown_grace", 10.0)
            _, pending = await asyncio.wait(list(self._inflight), timeout=grace)
            for task in pending:  # not acknowledged: another consumer gets them after claim_idle
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._replies_done = True
        if self._reply_task is not None:
            await self._wake_readers()
            await self._settle([self._reply_task])
            self._reply_task = None
        if "replies" in self._readers and self._redis is not None:
            try:
                await asyncio.wait_for(self._redis.delete(self.reply_key), self.op_timeout)
            except (*_NETWORK_ERRORS, TimeoutError):
                pass
        self._fail_waiting(TransportError("the Redis transport stopped before the reply arrived"))
        await self.close()

    async def _announce(self, domains: list[str]) -> None:
        try:
            async with asyncio.timeout(self.op_timeout):
                await self.liveness.announce(self._redis, domains)
        except (*_NETWORK_ERRORS, TimeoutError) as exc:
            # Not fatal: the reclaim loop renews it; meanwhile producers may refuse our domains.
            log.warning("could not announce consumer %s of %s: %s: %s", self.consumer, ", ".join(domains),
                        type(exc).__name__, exc)

    async def _withdraw(self, domains: list[str]) -> None:
        try:
            async with asyncio.timeout(self.op_timeout):
                await self.liveness.withdraw(self._redis, domains)
        except (*_NETWORK_ERRORS, TimeoutError) as exc:  # it expires after consumer_ttl anyway
            log.debug("could not withdraw consumer %s: %s", self.consumer, exc)

    async def _settle(self, tasks: list[asyncio.Task]) -> None:
        """Let woken readers return; cancel what still runs after one BLOCK period."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.block_ms / 1000 + 0.5)
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=1.0)
            if stuck:  # a cancellation swallowed inside redis-py: closing its connection ends it
                await self.close()
                await asyncio.wait(stuck, timeout=1.0)

    # -- request / reply (producer side) ---------------------------------------------------------

    async def request(self, message: BaseMessage) -> Any:
        domains = self._domains_for(type(message))
        if not domains:
            return await super().request(message)
        domain = domains[0]
        self._connect()
        if self._reply_task is None or self._reply_task.done():
            self._reply_task = asyncio.create_task(self._read_replies(), name="bollydog-redis-replies")
        limit = message.expire_time or get_settings().command_expire_time
        # Partial results come back only when someone listens: plain request/reply stays as it was.
        streamed = message.has_stream_listeners()
        fields = wire.encode(
            message, self._hub.registry.name_of(type(message)), reply_to=self.reply_key,
            deadline=time.time() + limit, session=current_session.get(), partials=streamed,
        )
        iid = message.iid
        pending = self._waiting.get(iid)
        if pending is not None and not pending.done():
            # The same message is already on its way (sent twice concurrently): share its reply
            # rather than sending it again or orphaning the first caller.
            return await self._await_reply(pending, message, domain, limit)
        future = asyncio.get_running_loop().create_future()
        self._waiting[iid] = future
        if streamed:
            self._sinks[iid] = PartialSink(message)
        try:
            async with asyncio.timeout(limit):
                try:
                    if not (self.wait_for_consumer or message.wait_for_consumer or self.liveness.fresh(domain)):
                        await self._require_consumer(message, domain)
                    await self._writes.submit(
                        "xadd", self.stream(domain, self._band(message.priority)), fields,
                        maxlen=self.maxlen, approximate=True,
                    )
                except _NETWORK_ERRORS as exc:
                    raise _not_sent(future, self._send_error(message, domain, exc)) from exc
                except NoConsumerError as exc:
                    raise _not_sent(future, exc)
                reply = await future
        except TimeoutError:
            self.liveness.forget(domain)  # its consumers may be gone: the next request checks
            raise HandlerTimeoutError(
                f"{message.domain}.{message.name} ({iid}) got no reply from domain '{domain}' within {limit}s"
            ) from None
        except TransportError:
            self.liveness.forget(domain)
            raise
        finally:
            if self._waiting.get(iid) is future:
                del self._waiting[iid]
            if streamed:
                self._sinks.pop(iid, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by the reply reader after the send failed: retrieved
        return _outcome(reply)

    def _send_error(self, message: BaseMessage, domain: str, exc: BaseException) -> TransportError:
        return TransportError(
            f"cannot send {message.domain}.{message.name} to domain '{domain}' "
            f"through Redis ({self.url}): {type(exc).__name__}: {exc}"
        )

    async def _require_consumer(self, message: BaseMessage, domain: str) -> None:
        """Raise NoConsumerError, before anything is sent, when no process consumes ``domain``.
        Redis errors propagate (the caller reports them as a failed send)."""
        if not await self.liveness.check(self._writes, domain):
            raise NoConsumerError(
                f"{message.domain}.{message.name} was not sent: no process is consuming domain "
                f"'{domain}' now. Start one (bollydog service --config ... --include {domain}) and "
                "retry, or set wait_for_consumer = True on the command class to queue it until one comes"
            )

    async def _await_reply(self, pending: asyncio.Future, message: BaseMessage, domain: str, limit: float) -> Any:
        try:
            async with asyncio.timeout(limit):
                reply = await asyncio.shield(pending)  # our timeout must not cancel the first caller
        except TimeoutError:
            raise HandlerTimeoutError(
                f"{message.domain}.{message.name} ({message.iid}) got no reply from domain '{domain}' within {limit}s"
            ) from None
        return _outcome(reply)

    async def publish(self, event: BaseMessage) -> None:
        domains = self._domains_for(type(event))
        if not domains:
            return
        self._connect()
        fields = wire.encode(event, self._hub.registry.name_of(type(event)), session=current_session.get())
        band = self._band(event.priority)
        try:
            await self._writes.run(*(
                ("xadd", (self.stream(domain, band), fields), {"maxlen": self.maxlen, "approximate": True})
                for domain in domains
            ))
        except _NETWORK_ERRORS as exc:
            raise TransportError(
                f"cannot publish {event.domain}.{event.name} to {', '.join(domains)} through Redis "
                f"({self.url}): {type(exc).__name__}: {exc}"
            ) from exc

    async def _read_replies(self) -> None:
        last = "0-0"  # the reply key is this process's own: everything in it is for us
        backoff = self.reconnect_backoff
        refreshed = 0.0
        loop = asyncio.get_running_loop()
        slot = self._reader("replies")
        while not self._replies_done:
            try:
                response = await self._blocking_call(
                    slot, "xread", {self.reply_key: last}, count=512, block=self.block_ms
                )
                if loop.time() - refreshed > 60:  # a dead caller's reply stream expires
                    refreshed = loop.time()
                    await self._redis.expire(self.reply_key, 3600)
            except _NETWORK_ERRORS as exc:
                if self._replies_done:
                    return
                self._fail_waiting(TransportError(f"lost the connection to Redis ({self.url}) while waiting for replies: {exc}"))
                log.warning("reply reader: %s: %s; retrying in %.2fs", type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_backoff_max)
                continue
            backoff = self.reconnect_backoff
            for _, entries in response or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if wire.is_partial(fields):
                        self._on_partial(fields)
                        continue
                    future = self._waiting.pop(fields.get("id", ""), None)
                    if future is not None and not future.done():
                        future.set_result(fields)

    def _on_partial(self, fields: dict[str, str]) -> None:
        sink = self._sinks.get(fields.get("id", ""))
        if sink is None:  # its request completed or gave up: nobody listens any more
            return
        try:
            sink.receive(wire.decode_partial(fields))
        except wire.WireError as exc:  # from a foreign consumer; the reply still comes
            log.warning("ignored a partial result of %s: %s", fields.get("id"), exc)

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    # -- consuming -------------------------------------------------------------------------------

    async def _ensure_groups(self, domain: str) -> None:
        for band in (HIGH, NORMAL):
            try:
                # From id 0: entries produced before any consumer existed are consumed too.
                await self._redis.xgroup_create(self.stream(domain, band), domain, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _consume(self, domain: str) -> None:
        await self._read_domain(domain)
        # Not reading any more (stopping, or the hub stopped taking work): producers must not
        # count on this process for new requests of the domain.
        await self._withdraw([domain])

    async def _read_domain(self, domain: str) -> None:
        high, normal = self.stream(domain, HIGH), self.stream(domain, NORMAL)
        slot = self._reader(f"consume:{domain}")
        backoff = self.reconnect_backoff
        ready = False
        resume = True  # first, this consumer's own pending entries (a restart with the same name)
        backlog = True
        while not self._stopping and (self._hub is None or self._hub.accepting):
            await self._capacity.wait()
            count = max(1, min(self.batch, self.concurrency - len(self._inflight)))
            try:
                if not ready:
                    await self._ensure_groups(domain)
                    ready = True
                response = None
                if resume:
                    response = await self._blocking_call(
                        slot, "xreadgroup", domain, self.consumer, {high: "0", normal: "0"}, count=1000
                    )
                elif backlog:  # under backlog, drain the high band before looking at the normal one
                    response = await self._blocking_call(
                        slot, "xreadgroup", domain, self.consumer, {high: ">"}, count=count
                    )
                if self._stopping:
                    return
                if not response and not resume:
                    response = await self._blocking_call(
                        slot, "xreadgroup", domain, self.consumer, {high: ">", normal: ">"},
                        count=count, block=self.block_ms,
                    )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty, or the stream was deleted
                    log.warning("consumer group of %s is gone; recreating it", domain)
                    ready = False
                    continue
                log.error("reading %s failed: %s; retrying in %.2fs", domain, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_backoff_max)
                continue
            except _NETWORK_ERRORS as exc:
                if self._stopping:
                    return
                log.warning("reading %s: %s: %s; reconnecting in %.2fs", domain, type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_backoff_max)
                continue
            backoff = self.reconnect_backoff
            received = 0
            for stream, entries in response or ():
                for entry_id, fields in entries:
                    received += 1
                    if fields is None:  # pending entry deleted from the stream meanwhile
                        self._spawn_ack(stream, domain, entry_id)
                    else:
                        self._start(domain, stream, entry_id, fields, redelivered=resume)
            backlog = resume or received >= count
            resume = False

    def _start(self, domain: str, stream: str, entry_id: str, fields: dict[str, str], redelivered: bool) -> None:
        task = asyncio.create_task(self._handle(domain, stream, entry_id, fields, redelivered))
        self._inflight[task] = [stream, domain, entry_id, time.monotonic()]
        self._inflight_ids.add((stream, entry_id))
        if len(self._inflight) >= self.concurrency:
            self._capacity.clear()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        info = self._inflight.pop(task, None)
        if info is not None:
            self._inflight_ids.discard((info[0], info[2]))
        if len(self._inflight) < self.concurrency and self._capacity is not None:
            self._capacity.set()
        if not task.cancelled() and task.exception() is not None:
            # Not acknowledged: redelivered after claim_idle, dead-lettered after max_deliveries.
            log.error("delivery of %s %s crashed", info and info[0], info and info[2], exc_info=task.exception())

    def _spawn_ack(self, stream: str, domain: str, entry_id: str) -> None:
        task = asyncio.create_task(self._finish(stream, domain, entry_id, None, None, None))
        self._inflight[task] = [stream, domain, entry_id, time.monotonic()]
        task.add_done_callback(self._finished)

    def accepts(self, name: str) -> bool:
        """Whether this process takes ``domain.name`` from the transport (accept/reject)."""
        accepted = self._accepted.get(name)
        if accepted is None:
            accepted = self._accepted[name] = self._filter.allows(name)
        return accepted

    async def _handle(
        self, domain: str, stream: str, entry_id: str, fields: dict[str, str], redelivered: bool
    ) -> None:
        try:
            envelope = wire.decode(fields)
        except wire.WireError as exc:
            await self._dead_letter(stream, domain, entry_id, fields, str(exc), error=exc)
            return
        if envelope.id is None:
            envelope.id = new_trace_id()
        reply_to = envelope.reply_to
        done_key = self._done_key(domain, envelope.id) if self.dedup_ttl else None
        if done_key is not None:
            try:
                cached = await self._redis.get(done_key)
            except _NETWORK_ERRORS:
                cached = None
            if cached is not None:  # handled before (a redelivery or a producer's retry)
                log.info("%s (%s) already handled; answering from the dedup record", envelope.name, envelope.id)
                await self._finish(stream, domain, entry_id, reply_to, json.loads(cached) or None, None)
                return
        if not self.accepts(envelope.name):
            await self._dead_letter(
                stream, domain, entry_id, fields,
                f"{envelope.name} is not accepted by consumer {self.consumer} (accept/reject options)",
                error=wire.WireError(f"{envelope.name} is not accepted from the transport here"),
            )
            return
        if envelope.deadline is not None and time.time() > envelope.deadline:
            log.warning("%s (%s) expired before it was delivered; dropped", envelope.name, envelope.id)
            reply = wire.encode_error_reply(
                envelope.id, entry_id, "bollydog.errors.HandlerTimeoutError", "expired before it was delivered"
            )
            await self._finish(stream, domain, entry_id, reply_to, reply, None)
            return
        hub = self._hub
        token = current_session.set(envelope.session)
        try:
            try:
                message = wire.build(wire.resolve(hub.registry, envelope.name), envelope)
            except wire.WireError as exc:
                await self._dead_letter(stream, domain, entry_id, fields, str(exc), error=exc)
                return
            reply = None
            if isinstance(message, Event):
                await self._run_event(domain, message)
            elif hub.registry.commands.get(type(message)) is None:
                await self._dead_letter(
                    stream, domain, entry_id, fields, f"no handler for {envelope.name} in this process",
                    error=wire.WireError(f"no handler for {envelope.name} in consumer {self.consumer}"),
                )
                return
            else:
                relay = None
                if envelope.partials and reply_to:
                    relay = PartialRelay(self._reply_writer(reply_to), envelope.id, entry_id)
                    message.forward_partials(relay.push)
                try:
                    try:
                        result = await hub.execute(message)
                    except HubNotRunningError:
                        # This process is stopping: leave the entry pending (unacknowledged) so
                        # that another consumer of the group reclaims and runs it.
                        return
                    except Exception as exc:  # the caller gets it back (wire.encode_reply)
                        if reply_to:
                            reply = wire.encode_reply(envelope.id, entry_id, error=exc)
                        else:
                            log.error("%s (%s) from the transport failed: %s: %s", envelope.name, envelope.id,
                                      type(exc).__name__, exc)
                    else:
                        if reply_to:
                            reply = wire.encode_reply(envelope.id, entry_id, result)
                    if relay is not None:
                        await relay.flush()  # every partial result reaches the caller before the reply
                finally:
                    if relay is not None:
                        relay.abort()  # nothing left once flushed; else (cancelled) stop sending
        finally:
            current_session.reset(token)
        await self._finish(stream, domain, entry_id, reply_to, reply, done_key)

    def _reply_writer(self, reply_to: str) -> Write:
        """Writes a batch of entries to ``reply_to``, in order, in one coalesced round trip."""
        async def write(entries: list[dict[str, str]]) -> None:
            await self._writes.run(*(
                ("xadd", (reply_to, entry), {"maxlen": self.reply_maxlen, "approximate": True}) for entry in entries
            ))
        return write

    async def _run_event(self, domain: str, event: BaseMessage) -> None:
        hub = self._hub
        # Only the handlers of the domain whose stream carried it: a process hosting two
        # domains that both handle the event receives it once per domain.
        handlers = tuple(
            h for h in hub.registry.event_handlers(type(event)) if getattr(h.app, "domain", None) == domain
        )
        if not handlers:
            return
        try:
            await hub.run_event_handlers(event, handlers)
        except EventHandlersError:
            pass  # each failure was logged by the hub; an event has no reply

    async def _finish(
        self, stream: str, domain: str, entry_id: str, reply_to: str | None,
        reply: dict[str, str] | None, done_key: str | None,
    ) -> None:
        """Reply, record the id (dedup), acknowledge and delete: one round trip, shared with the
        other handlers that finish in the same loop iteration (coalesced)."""
        commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        if reply_to and reply is not None:
            commands.append(("xadd", (reply_to, reply), {"maxlen": self.reply_maxlen, "approximate": True}))
        if done_key is not None:
            commands.append(("set", (done_key, json.dumps(reply or {})), {"ex": max(1, int(self.dedup_ttl))}))
        commands.append(("xack", (stream, domain, entry_id), {}))
        if self.delete_acked:
            commands.append(("xdel", (stream, entry_id), {}))
        backoff = self.reconnect_backoff
        for attempt in range(5):
            try:
                await self._writes.run(*commands)
                return
            except _NETWORK_ERRORS as exc:
                if attempt == 4 or self._stopping:
                    log.error("could not acknowledge %s %s (%s); it stays pending and will be redelivered",
                              stream, entry_id, exc)
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_backoff_max)

    def _known_name(self, name: Any) -> str:
        """A registered message's canonical name, else "unknown": names from outside producers
        must not become metric attributes (unbounded cardinality)."""
        try:
            registry = self._hub.registry
            return registry.name_of(wire.resolve(registry, str(name)))
        except (wire.WireError, AttributeError):
            return "unknown"

    async def _dead_letter(
        self, stream: str, domain: str, entry_id: str, fields: dict[str, str], reason: str,
        error: BaseException | None = None,
    ) -> None:
        log.error("dead letter %s %s: %s", stream, entry_id, reason)
        entry = {k: v for k, v in fields.items() if not k.startswith("dl_")}
        entry.update(
            dl_reason=reason, dl_stream=stream, dl_group=domain, dl_entry=entry_id,
            dl_time=repr(time.time()), dl_consumer=self.consumer,
        )
        reply_to = fields.get("reply_to")
        reply = None
        if reply_to and error is not None:
            reply = wire.encode_reply(fields.get("id") or "", entry_id, error=error)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self.deadletter_key, entry, maxlen=self.deadletter_maxlen, approximate=True)
                if reply is not None:
                    pipe.xadd(reply_to, reply, maxlen=self.reply_maxlen, approximate=True)
                pipe.xack(stream, domain, entry_id)
                if self.delete_acked:
                    pipe.xdel(stream, entry_id)
                await pipe.execute()
        except _NETWORK_ERRORS as exc:
            log.error("could not dead-letter %s %s (%s); it stays pending", stream, entry_id, exc)
            return
        if self._hub is not None and self._hub.hooks.dead_lettered:
            self._hub.hooks.dead_lettered(DeadLetter(self._known_name(fields.get("name")), domain, reason))

    # -- reclaiming ------------------------------------------------------------------------------

    async def _reclaim(self, domain: str) -> None:
        """The domain's upkeep: renew this consumer's heartbeat, keep our long handlers' entries
        alive, and every ``claim_interval`` take over the entries a dead consumer left pending
        for ``claim_idle`` seconds."""
        # Touch often enough that our entries never look idle for claim_idle (touched when a
        # third of it has passed, checked at least every third): idle stays under 2/3 claim_idle.
        # The heartbeat likewise renews at least every third of its ttl.
        tick = min(self.claim_interval, self.claim_idle / 3, self.consumer_ttl / 3)
        next_claim = time.monotonic() + self.claim_interval
        while not self._stopping:
            await asyncio.sleep(tick)
            try:
                if self._hub is not None and self._hub.accepting and not self._stopping:
                    await self.liveness.announce(self._redis, [domain])
                await self._touch(domain)
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.claim_interval
                    for band in (HIGH, NORMAL):
                        await self._claim(domain, self.stream(domain, band))
            except _NETWORK_ERRORS as exc:
                log.debug("reclaim %s: %s", domain, exc)

    async def _touch(self, domain: str) -> None:
        now = time.monotonic()
        stale: dict[str, list[str]] = {}
        for info in self._inflight.values():
            if info[1] == domain and now - info[3] >= self.claim_idle / 3:
                stale.setdefault(info[0], []).append(info[2])
                info[3] = now
        for stream, ids in stale.items():  # JUSTID resets the idle time, not the delivery count
            await self._redis.xclaim(stream, domain, self.consumer, 0, ids, justid=True)

    async def _claim(self, domain: str, stream: str) -> None:
        start = "0-0"
        while not self._stopping and len(self._inflight) < self.concurrency:
            count = max(1, min(self.batch, self.concurrency - len(self._inflight)))
            response = await self._redis.xautoclaim(
                stream, domain, self.consumer, int(self.claim_idle * 1000), start_id=start, count=count
            )
            start, claimed = response[0], response[1]
            claimed = [(i, f) for i, f in claimed if (stream, i) not in self._inflight_ids]
            if claimed:
                ids = [i for i, _ in claimed]
                pending = await self._redis.xpending_range(
                    stream, domain, min=ids[0], max=ids[-1], count=len(ids) + len(self._inflight) + 16,
                    consumername=self.consumer,
                )
                deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
                for entry_id, fields in claimed:
                    times = deliveries.get(entry_id, 1)
                    if fields is None:
                        self._spawn_ack(stream, domain, entry_id)
                    elif times > self.max_deliveries:
                        await self._dead_letter(
                            stream, domain, entry_id, fields,
                            f"delivered {times} times without an acknowledgement "
                            f"(max_deliveries={self.max_deliveries}): its consumers died or hung",
                            error=TransportError("delivered too many times; moved to the dead-letter stream"),
                        )
                    else:
                        log.info("reclaimed %s %s (delivery %d)", stream, entry_id, times)
                        self._start(domain, stream, entry_id, fields, redelivered=True)
            if start in ("0-0", "0"):
                return

    # -- dead letters (CLI) ----------------------------------------------------------------------

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters: their fields plus ``dl_id`` (the entry id)."""
        self._connect()
        try:
            entries = await self._redis.xrange(self.deadletter_key, count=count)
        except _NETWORK_ERRORS as exc:
            raise TransportError(f"cannot read dead letters from Redis ({self.url}): {exc}") from exc
        return [{"dl_id": entry_id, **fields} for entry_id, fields in entries]

    async def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        """Put dead letters back on their streams (all when ``ids`` is None); the ids replayed."""
        self._connect()
        wanted = None if ids is None else set(ids)
        replayed: list[str] = []
        try:
            entries = await self._redis.xrange(self.deadletter_key)
            for entry_id, fields in entries:
                if wanted is not None and entry_id not in wanted:
                    continue
                stream = fields.get("dl_stream")
                if not stream:
                    continue
                original = {k: v for k, v in fields.items() if not k.startswith("dl_")}
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.xadd(stream, original, maxlen=self.maxlen, approximate=True)
                    pipe.xdel(self.deadletter_key, entry_id)
                    await pipe.execute()
                replayed.append(entry_id)
        except _NETWORK_ERRORS as exc:
            raise TransportError(f"cannot replay dead letters through Redis ({self.url}): {exc}") from exc
        return replayed


def _not_sent(future: asyncio.Future, error: TransportError) -> TransportError:
    """``error``, also given to a caller sharing the request: no reply will ever come."""
    if not future.done():
        future.set_exception(error)
    return error


def _outcome(reply: Any) -> Any:
    """A reply's result, or its error raised."""
    ok, value = wire.decode_reply(reply)
    if ok:
        return value
    raise value

"""MemoryBroker: what the Redis server is to a split deployment, in one process's memory.

Give the same broker to the :class:`~bollydog.transport.memory.MemoryTransport` of several hubs
and they form a split deployment in one process: each hub consumes the streams of its own
domains and sends the others' messages through the broker. The broker models what the Redis
transport relies on, with the same semantics:

- **streams** of entries (flat ``str -> str`` field maps, the wire format of docs/distribute.md),
  one per domain and priority band, ids increasing;
- **consumer groups**: each entry of a stream goes to one consumer of the group; a delivered
  entry stays **pending** for its consumer, with a delivery count, until acknowledged (which
  also deletes it); pending entries idle for long enough can be **claimed** by another consumer
  (the count goes up); a consumer's own pending entries can be read again (a restart);
- **reply streams**, one per caller, read by a listener (the caller's transport) or kept until
  one comes (what a test standing for a foreign producer reads with :meth:`MemoryBroker.replies`);
- **dead letters**, with ids, listed and replayed as ``bollydog deadletters`` does;
- **liveness**: consumers' heartbeats per domain, expiring after their ttl;
- **a notice channel** (publish/subscribe, what the Redis transport's ``{prefix}:notices`` is):
  what is sent reaches the processes watching at that moment, nobody else.

Everything is synchronous except waiting for new entries (:meth:`MemoryBroker.read_group`), so
no step can be cut half-done by a cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["MemoryBroker", "PendingEntry", "StoredEntry"]

#: Receives the entries of a reply stream, in order.
Listener = Callable[[dict[str, str]], None]


@dataclass(slots=True)
class StoredEntry:
    """An entry of a stream."""

    id: str
    seq: int
    fields: dict[str, str]


@dataclass(slots=True)
class PendingEntry:
    """A delivered entry not acknowledged yet: whose it is, how often it was delivered, and
    when it was last delivered or touched (monotonic seconds)."""

    consumer: str
    deliveries: int
    since: float


@dataclass(slots=True)
class _Group:
    last: int = 0  # seq of the last entry delivered to the group
    pending: dict[str, PendingEntry] = field(default_factory=dict)


@dataclass(slots=True)
class _Stream:
    entries: dict[str, StoredEntry] = field(default_factory=dict)  # id order
    groups: dict[str, _Group] = field(default_factory=dict)
    waiters: set[asyncio.Future[None]] = field(default_factory=set)


class MemoryBroker:
    """The shared state of the in-memory transports of one (test) deployment."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._seq = itertools.count(1)
        self._dead: dict[str, dict[str, str]] = {}
        self._watchers: dict[str, Callable[[str], None]] = {}
        self._listeners: dict[str, Listener] = {}
        self._replies: dict[str, list[dict[str, str]]] = {}  # reply streams nobody listens to
        self._heartbeats: dict[str, dict[str, float]] = {}  # domain -> consumer -> expiry
        self._claims: dict[str, float] = {}  # claim key -> expiry

    @staticmethod
    def stream_key(domain: str, band: str) -> str:
        """The stream of ``domain``'s messages of ``band`` (``high`` or ``normal``)."""
        return f"stream:{domain}:{band}"

    def _stream(self, key: str) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        return stream

    def _new_id(self) -> tuple[str, int]:
        seq = next(self._seq)
        return f"{seq}-0", seq

    # -- streams -------------------------------------------------------------------------------

    def add(self, key: str, fields: Mapping[str, str | bytes]) -> str:
        """Append an entry to stream ``key`` (XADD); its id. Readers waiting on it wake up.

        Bytes are stored as the Redis transport reads them: UTF-8, what is not valid UTF-8 as
        lone surrogates (``surrogateescape``), which the envelope check refuses."""
        stream = self._stream(key)
        entry_id, seq = self._new_id()
        stream.entries[entry_id] = StoredEntry(entry_id, seq, {_text(k): _text(v) for k, v in fields.items()})
        self._wake(stream)
        return entry_id

    def length(self, key: str) -> int:
        """Entries in stream ``key`` (XLEN): not acknowledged yet."""
        stream = self._streams.get(key)
        return len(stream.entries) if stream is not None else 0

    def pending(self, key: str, group: str) -> int:
        """Entries of stream ``key`` delivered to ``group`` and not acknowledged."""
        stream = self._streams.get(key)
        found = stream.groups.get(group) if stream is not None else None
        return len(found.pending) if found is not None else 0

    def wake(self, keys: Iterable[str]) -> None:
        """Wake the readers waiting on ``keys`` (they return what there is, maybe nothing)."""
        for key in keys:
            self._wake(self._stream(key))

    @staticmethod
    def _wake(stream: _Stream) -> None:
        waiters, stream.waiters = stream.waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def take(self, group: str, consumer: str, keys: Iterable[str], count: int) -> list[tuple[str, StoredEntry]]:
        """Up to ``count`` entries never delivered to ``group``, from the first of ``keys`` on
        (the high band before the normal one); they become ``consumer``'s pending entries."""
        taken: list[tuple[str, StoredEntry]] = []
        now = time.monotonic()
        for key in keys:
            stream = self._stream(key)
            state = stream.groups.setdefault(group, _Group())
            for entry in stream.entries.values():
                if len(taken) >= count:
                    return taken
                if entry.seq <= state.last:
                    continue
                state.last = entry.seq
                state.pending[entry.id] = PendingEntry(consumer, 1, now)
                taken.append((key, entry))
        return taken

    async def read_group(
        self, group: str, consumer: str, keys: Iterable[str], count: int, block: float | None = None
    ) -> list[tuple[str, StoredEntry]]:
        """:meth:`take`, waiting up to ``block`` seconds (None: until woken) for entries."""
        keys = list(keys)
        loop = asyncio.get_running_loop()
        deadline = None if block is None else loop.time() + block
        while True:
            taken = self.take(group, consumer, keys, count)
            if taken:
                return taken
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            waiter: asyncio.Future[None] = loop.create_future()
            for key in keys:
                self._stream(key).waiters.add(waiter)
            try:
                await asyncio.wait([waiter], timeout=remaining)
            finally:
                for key in keys:
                    self._stream(key).waiters.discard(waiter)
            if not waiter.done():
                return []  # timed out
            if block is None:  # woken: return what there is (maybe nothing, when stopping)
                return self.take(group, consumer, keys, count)

    def own(self, group: str, consumer: str, keys: Iterable[str]) -> list[tuple[str, StoredEntry]]:
        """``consumer``'s pending entries of ``keys`` (XREADGROUP from 0: a restart resumes them)."""
        found: list[tuple[str, StoredEntry]] = []
        for key in keys:
            stream = self._stream(key)
            state = stream.groups.setdefault(group, _Group())
            for entry_id, pending in state.pending.items():
                entry = stream.entries.get(entry_id)
                if pending.consumer == consumer and entry is not None:
                    pending.deliveries += 1
                    pending.since = time.monotonic()
                    found.append((key, entry))
        return found

    def ack(self, key: str, group: str, entry_id: str) -> None:
        """Acknowledge and delete an entry (XACK + XDEL)."""
        stream = self._stream(key)
        state = stream.groups.get(group)
        if state is not None:
            state.pending.pop(entry_id, None)
        stream.entries.pop(entry_id, None)

    def touch(self, key: str, group: str, consumer: str, ids: Iterable[str]) -> None:
        """Reset the idle time of ``consumer``'s pending ``ids`` (XCLAIM JUSTID)."""
        state = self._stream(key).groups.get(group)
        if state is None:
            return
        now = time.monotonic()
        for entry_id in ids:
            pending = state.pending.get(entry_id)
            if pending is not None:
                pending.consumer, pending.since = consumer, now

    def claim(
        self, key: str, group: str, consumer: str, min_idle: float, count: int, skip: Callable[[str], bool]
    ) -> list[tuple[StoredEntry, int]]:
        """Up to ``count`` pending entries idle for ``min_idle`` seconds, now ``consumer``'s, with
        their delivery counts (XAUTOCLAIM); ``skip(entry_id)`` leaves an entry where it is."""
        stream = self._stream(key)
        state = stream.groups.get(group)
        if state is None:
            return []
        now = time.monotonic()
        claimed: list[tuple[StoredEntry, int]] = []
        for entry_id, pending in list(state.pending.items()):
            if len(claimed) >= count:
                break
            if now - pending.since < min_idle or skip(entry_id):
                continue
            entry = stream.entries.get(entry_id)
            if entry is None:  # deleted meanwhile: nothing left to deliver
                del state.pending[entry_id]
                continue
            pending.consumer, pending.since = consumer, now
            pending.deliveries += 1
            claimed.append((entry, pending.deliveries))
        return claimed

    # -- reply streams -------------------------------------------------------------------------

    def reply(self, key: str, fields: Mapping[str, str]) -> None:
        """Add an entry to reply stream ``key``: to its listener at once, else kept."""
        entry = {str(k): str(v) for k, v in fields.items()}
        listener = self._listeners.get(key)
        if listener is None:
            self._replies.setdefault(key, []).append(entry)
        else:
            listener(entry)

    def listen(self, key: str, listener: Listener) -> None:
        """Hand the entries of reply stream ``key`` to ``listener``, those kept first."""
        self._listeners[key] = listener
        for entry in self._replies.pop(key, []):
            listener(entry)

    def unlisten(self, key: str) -> None:
        """Stop handing ``key``'s entries over; the stream is deleted."""
        self._listeners.pop(key, None)
        self._replies.pop(key, None)

    def replies(self, key: str) -> list[dict[str, str]]:
        """The entries of reply stream ``key`` that no listener took, oldest first."""
        return list(self._replies.get(key, ()))

    # -- dead letters --------------------------------------------------------------------------

    def add_dead_letter(self, letter: Mapping[str, str]) -> str:
        """Keep ``letter`` (an entry's fields plus its ``dl_*`` fields); its id."""
        entry_id, _ = self._new_id()
        self._dead[entry_id] = dict(letter)
        return entry_id

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters, with their ``dl_id``."""
        return [{"dl_id": i, **fields} for i, fields in itertools.islice(self._dead.items(), count)]

    def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        """Put dead letters back on their streams (all when ``ids`` is None); the ids replayed."""
        wanted = None if ids is None else set(ids)
        replayed: list[str] = []
        for entry_id, fields in list(self._dead.items()):
            stream = fields.get("dl_stream")
            if (wanted is not None and entry_id not in wanted) or not stream:
                continue
            self.add(stream, {k: v for k, v in fields.items() if not k.startswith("dl_")})
            del self._dead[entry_id]
            replayed.append(entry_id)
        return replayed

    # -- the notice channel ----------------------------------------------------------------------

    def watch(self, name: str, receive: Callable[[str], None]) -> None:
        """Hand what is sent on the notice channel from now on to ``receive``."""
        self._watchers[name] = receive

    def unwatch(self, name: str) -> None:
        self._watchers.pop(name, None)

    def watchers(self) -> int:
        """How many watch the notice channel."""
        return len(self._watchers)

    def notify(self, notices: Iterable[str]) -> None:
        """Send ``notices`` to the watchers, soon (on the loop, as a network would)."""
        loop = asyncio.get_running_loop()
        for notice in notices:
            for receive in tuple(self._watchers.values()):
                loop.call_soon(receive, notice)

    # -- liveness ------------------------------------------------------------------------------

    def announce(self, domain: str, consumer: str, ttl: float) -> None:
        """``consumer`` takes ``domain``'s messages for the next ``ttl`` seconds."""
        self._heartbeats.setdefault(domain, {})[consumer] = time.monotonic() + ttl

    def withdraw(self, domain: str, consumer: str) -> None:
        """``consumer`` no longer takes ``domain``'s messages."""
        self._heartbeats.get(domain, {}).pop(consumer, None)

    def consumers(self, domain: str) -> list[str]:
        """The consumers of ``domain`` whose heartbeat has not expired."""
        now = time.monotonic()
        return [c for c, expiry in self._heartbeats.get(domain, {}).items() if expiry > now]

    def claim_once(self, key: str, ttl: float) -> bool:
        """True when ``key`` was free (never claimed, or its claim expired): it is now taken
        for ``ttl`` seconds (Redis ``SET NX PX``)."""
        now = time.monotonic()
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims = {k: expiry for k, expiry in self._claims.items() if expiry > now}
        self._claims[key] = now + ttl
        return True

    def alive(self, domain: str) -> bool:
        """Whether some consumer of ``domain`` is alive."""
        return bool(self.consumers(domain))


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)

"""The Redis transport's dead letters: one stream, ``{prefix}:deadletter``, for every domain.

Consumers add to it (:meth:`RedisDeadLetters.add`: the letter, the caller's error reply and the
acknowledgement of the original entry, in one pipeline); ``bollydog deadletters`` lists and
replays it (:meth:`RedisDeadLetters.read`, :meth:`RedisDeadLetters.replay`) without starting a
hub. Each letter is the original entry's fields plus ``dl_reason``, ``dl_stream``, ``dl_group``,
``dl_entry``, ``dl_time`` and ``dl_consumer`` (docs/distribute.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bollydog.errors import TransportError
from bollydog.transport.delivery import Entry
from bollydog.transport.redis.connections import NETWORK_ERRORS, Connections
from bollydog.transport.redis.options import Keys, RedisOptions

__all__ = ["RedisDeadLetters"]

log = logging.getLogger("bollydog.transport.redis")


class RedisDeadLetters:
    """The dead-letter stream of one deployment."""

    def __init__(self, connections: Connections, keys: Keys, options: RedisOptions) -> None:
        self.connections = connections
        self.keys = keys
        self.options = options

    async def add(
        self, entry: Entry, letter: dict[str, str], reply_to: str | None, reply: dict[str, str] | None
    ) -> str | None:
        """Move ``entry`` to the dead letters as ``letter``, answering its caller with ``reply``;
        the dead letter's id, or None when Redis could not be reached (the entry stays pending)."""
        options = self.options
        try:
            async with self.connections.bounded(), self.connections.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.keys.deadletter, letter, maxlen=options.deadletter_maxlen, approximate=True)
                if reply_to and reply is not None:
                    pipe.xadd(reply_to, reply, maxlen=options.reply_maxlen, approximate=True)
                pipe.xack(entry.stream, entry.domain, entry.entry_id)
                if options.delete_acked:
                    pipe.xdel(entry.stream, entry.entry_id)
                results = await pipe.execute()
        except NETWORK_ERRORS as exc:
            log.error("could not dead-letter %s %s (%s); it stays pending", entry.stream, entry.entry_id, exc)
            return None
        return str(results[0])  # the XADD to the dead-letter stream came first

    async def read(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters: their fields plus ``dl_id`` (the entry id)."""
        try:
            async with self.connections.bounded():
                entries = await self.connections.client.xrange(self.keys.deadletter, count=count)
        except NETWORK_ERRORS as exc:
            raise TransportError(f"cannot read dead letters from Redis ({self.options.url}): {exc}") from exc
        # For display: bytes that are not UTF-8 (kept as they came, see connections.ENTRY_ERRORS) as U+FFFD.
        return [{"dl_id": entry_id, **{k: _printable(v) for k, v in fields.items()}} for entry_id, fields in entries]

    async def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        """Put dead letters back on their streams (all when ``ids`` is None); the ids replayed."""
        client = self.connections.client
        wanted = None if ids is None else set(ids)
        replayed: list[str] = []
        try:
            async with self.connections.bounded():
                letters = await client.xrange(self.keys.deadletter)
            for entry_id, fields in letters:
                if wanted is not None and entry_id not in wanted:
                    continue
                stream = fields.get("dl_stream")
                if not stream:
                    continue
                original = {k: v for k, v in fields.items() if not k.startswith("dl_")}
                async with self.connections.bounded(), client.pipeline(transaction=True) as pipe:
                    pipe.xadd(stream, original, maxlen=self.options.maxlen, approximate=True)
                    pipe.xdel(self.keys.deadletter, entry_id)
                    await pipe.execute()
                replayed.append(entry_id)
        except NETWORK_ERRORS as exc:
            raise TransportError(f"cannot replay dead letters through Redis ({self.options.url}): {exc}") from exc
        return replayed


def _printable(text: str) -> str:
    """``text`` with the lone surrogates of undecodable bytes as U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

"""The Redis transport's completion notices (:mod:`bollydog.transport.notices`): the pub/sub
channel ``{prefix}:notices``. ``PUBSUB NUMSUB`` tells a process whether anyone listens; a
listening process holds a connection of its own, subscribed, read by a task of its own that
resubscribes after a lost connection."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from bollydog.transport.notices import NoticeFeed
from bollydog.transport.redis.connections import NETWORK_ERRORS, Backoff, Connections
from bollydog.transport.redis.options import Keys, RedisOptions

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.transport import TransportHost

__all__ = ["RedisNotices"]

log = logging.getLogger("bollydog.transport.redis")


class RedisNotices(NoticeFeed):
    """Completion notices over Redis pub/sub."""

    def __init__(self, hub: "TransportHost", connections: Connections, keys: Keys, options: RedisOptions) -> None:
        super().__init__(hub, keys.consumer, options.notice_interval, options.notice_buffer)
        self.connections = connections
        self.options = options
        self.channel = keys.notices
        self._receiving: asyncio.Task[None] | None = None

    async def listeners(self) -> int:
        async with asyncio.timeout(self.options.op_timeout):
            counts = await self.connections.client.pubsub_numsub(self.channel)
        return sum(int(count) for _, count in counts)

    async def send(self, notices: list[str]) -> None:
        await self.connections.writes.run(*(("publish", (self.channel, notice), {}) for notice in notices))

    async def listen(self) -> None:
        subscribed = asyncio.get_running_loop().create_future()
        self._receiving = asyncio.create_task(self._receive(subscribed), name=f"notices:{self.channel}")
        # Subscribed before we count ourselves among the listeners (the caller does at once).
        await asyncio.wait([self._receiving, subscribed], timeout=self.options.op_timeout,
                           return_when=asyncio.FIRST_COMPLETED)

    async def unlisten(self) -> None:
        task, self._receiving = self._receiving, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _receive(self, subscribed: "asyncio.Future[None]") -> None:
        options = self.options
        backoff = Backoff(options.reconnect_backoff, options.reconnect_backoff_max)
        while True:
            client: Any = aioredis.Redis.from_url(
                options.url, decode_responses=True, socket_connect_timeout=options.op_timeout,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not subscribed.done():
                    subscribed.set_result(None)
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.receive(message["data"])
            except NETWORK_ERRORS as exc:
                delay = backoff.next()
                log.warning("completion notices: %s; subscribing again in %.2fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except NETWORK_ERRORS:  # pragma: no cover - best effort
                    pass

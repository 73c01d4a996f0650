"""Completion notices: what each process of a split deployment completes, for those that watch.

In one process a WebSocket subscriber sees every message the hub completes. Split, most of that
work is done in other processes. So each process of a stream transport publishes a compact
notice of every message its hub completes (topic, id, message, result or error, and its own
consumer name as origin) on the deployment's notice channel, and a process whose
``hub.hooks.remote_completed`` has a listener (a SocketService with subscribers) listens on
that channel and fires the hook with the other processes' notices.

Nothing is encoded nor sent while no process listens: every ``interval`` seconds a process
checks whether it should listen (a listener connected or gone) and whether any other process
does. Notices are best effort, like the frames they become: at most ``buffer`` wait to be sent
(beyond, the oldest are dropped and counted in :attr:`NoticeFeed.dropped`); a process that was
not listening when a notice was sent never gets it. The same message may be reported by several
processes (the one that sent a command and the one that ran it): the id tells them apart.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from mode import Service

from bollydog.encoding import dumps_text
from bollydog.errors import describe
from bollydog.hub.hooks import Completion
from bollydog.models.base import BaseMessage

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.transport import TransportHost

__all__ = ["NoticeFeed"]

log = logging.getLogger("bollydog.transport")

#: Notices sent in one round trip at most.
_BATCH = 256


class NoticeFeed(Service):
    """Publishes this hub's completions while another process listens; listens while this hub
    has a ``remote_completed`` listener. The storage (a channel) is the subclass's."""

    mundane_level = "debug"

    def __init__(self, hub: "TransportHost", origin: str, interval: float, buffer: int) -> None:
        super().__init__()
        self.hub = hub
        self.origin = origin
        self.interval = interval
        self.queue: deque[str] = deque(maxlen=buffer)
        #: Whether another process listens (as of the last check): only then are notices sent.
        self.wanted = False
        #: Whether this process listens on the channel.
        self.listening = False
        self.published = 0
        self.dropped = 0
        self._ready = asyncio.Event()
        self._failing = False

    # -- what each storage fills in --------------------------------------------------------------

    @abc.abstractmethod
    async def listeners(self) -> int:
        """How many processes listen on the channel (this one included when it does)."""

    @abc.abstractmethod
    async def send(self, notices: list[str]) -> None:
        """Publish ``notices`` on the channel, in order."""

    @abc.abstractmethod
    async def listen(self) -> None:
        """Start handing the channel's notices to :meth:`receive`."""

    @abc.abstractmethod
    async def unlisten(self) -> None:
        """Stop listening; never raises."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.hub.hooks.completed.connect(self.completed)

    async def on_stop(self) -> None:
        self.hub.hooks.completed.disconnect(self.completed)
        self.wanted = False
        if self.listening:
            self.listening = False
            await self.unlisten()

    @Service.task
    async def _upkeep(self) -> None:
        # In a task, not in on_start: an unreachable server must not hold up the start.
        while not self.should_stop:
            await self.refresh()
            await self.sleep(self.interval)

    async def refresh(self) -> None:
        """Listen or not (a ``remote_completed`` listener?), and learn whether anyone else does."""
        try:
            want = bool(self.hub.hooks.remote_completed)
            if want and not self.listening:
                await self.listen()
                self.listening = True
            elif not want and self.listening:
                self.listening = False
                await self.unlisten()
            self.wanted = await self.listeners() - (1 if self.listening else 0) > 0
        except Exception as exc:  # the storage is unreachable: try again at the next check
            if not self._failing:  # once per outage, not every interval
                log.warning("completion notices: %s: %s; checking again every %ss",
                            type(exc).__name__, exc, self.interval)
            self._failing = True
        else:
            self._failing = False

    # -- publishing ------------------------------------------------------------------------------

    def completed(self, message: BaseMessage, result: Any, error: BaseException | None) -> None:
        """``hub.hooks.completed``: queue a notice while another process listens."""
        if not self.wanted:
            return
        topic = self.hub.registry.name_of(type(message))
        notice: dict[str, Any] = {"o": self.origin, "i": message.iid, "t": topic, "m": message, "r": result}
        if error is not None:
            info = describe(error)
            notice["e"] = {"error": info.code, "message": info.message}
        if len(self.queue) == self.queue.maxlen:
            if not self.dropped:
                log.warning("completion notices come faster than they are sent; dropping the oldest")
            self.dropped += 1
        self.queue.append(dumps_text(notice))
        self._ready.set()

    @Service.task
    async def _flush(self) -> None:
        queue = self.queue
        while not self.should_stop:
            await self._ready.wait()
            self._ready.clear()
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    await self.send(batch)
                except Exception as exc:  # best effort: these are lost, the next ones are tried
                    self.dropped += len(batch)
                    log.warning("could not send %d completion notice(s): %s: %s", len(batch), type(exc).__name__, exc)
                else:
                    self.published += len(batch)

    # -- receiving -------------------------------------------------------------------------------

    def receive(self, text: str) -> None:
        """A notice from the channel: to ``hub.hooks.remote_completed`` unless it is our own."""
        try:
            notice = json.loads(text)
            origin, topic = str(notice["o"]), str(notice["t"])
        except (ValueError, KeyError, TypeError):
            log.debug("not a completion notice: %.200r", text)
            return
        hook = self.hub.hooks.remote_completed
        if origin == self.origin or not hook:
            return
        error = notice.get("e")
        hook(Completion(
            topic=topic, id=str(notice.get("i") or ""), message=notice.get("m"), result=notice.get("r"),
            error=error if isinstance(error, dict) else None, origin=origin,
        ))

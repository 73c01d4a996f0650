"""One WebSocket connection: reads frames, runs requests concurrently, delivers subscriptions.

Each request frame becomes a task of its own, so several requests are in flight on one socket
at once (up to ``max_inflight``; beyond that the connection stops reading until one finishes,
which is back-pressure, not an error). Responses are sent by the request's task; subscription
notifications go through a bounded queue drained by one writer task, so a slow client never
slows down the hub. A subscriber whose queue overflows is disconnected with code 1013.

A client that stops reading fills its TCP buffer, and a send then waits. Every send has a
deadline, ``send_timeout``: past it the client is dropped, its connection aborted (a close
frame cannot be written behind a full buffer; the client sees 1006), and its subscriptions and
queued notifications are freed. Other sockets never wait for it: each has its own writer.

A client that disconnects does not cancel the work it started: its messages are in the hub and
complete (and are still announced to other subscribers); only the replies are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bollydog.context import current_session, format_traceparent, parse_traceparent, remote_parent
from bollydog.entrypoint.kit.admission import stream
from bollydog.entrypoint.kit.guard import ABORT
from bollydog.entrypoint.websocket.protocol import (
    PING,
    REQUEST,
    SUBSCRIBE,
    Frame,
    InvalidFrameError,
    decode,
    encode,
    error_frame,
    parse_frame,
    peek_id,
    topic_matches,
)
from bollydog.errors import EventNotAcceptedError, HubNotRunningError, MessageError
from bollydog.models.base import Event, Session

if TYPE_CHECKING:  # pragma: no cover
    from starlette.websockets import WebSocket

    from bollydog.entrypoint.websocket.app import SocketService

log = logging.getLogger("bollydog.websocket")

#: Close code for a subscriber that cannot keep up ("try again later").
CLOSE_TOO_SLOW = 1013


class Connection:
    """The server side of one accepted WebSocket."""

    def __init__(self, service: "SocketService", websocket: "WebSocket", session: Session) -> None:
        self.service = service
        self.websocket = websocket
        self.session = session
        self.topics: list[str] = []
        self.closed = False
        self._send_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(service.settings.max_inflight)
        self._notifications: asyncio.Queue[str] = asyncio.Queue(service.settings.notify_queue_size)

    # -- reading -------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the client disconnects or the connection is closed."""
        writer = asyncio.create_task(self._write_notifications(), name="bollydog-ws-notify")
        try:
            while True:
                event = await self.websocket.receive()
                if event["type"] == "websocket.disconnect":
                    return
                data = event.get("text")
                if data is None:
                    data = event.get("bytes") or b""
                try:
                    await self._on_frame(data)
                except Exception as exc:  # a bug must not cost the client its socket
                    log.error("websocket frame failed", exc_info=exc)
                    await self.send(error_frame(None, exc))
        finally:
            self.closed = True
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _on_frame(self, data: str | bytes) -> None:
        raw: Any = None
        try:
            raw = decode(data)
            frame = parse_frame(raw)
        except InvalidFrameError as exc:
            await self.send(error_frame(peek_id(raw), exc))
            return
        if frame.type == REQUEST:
            if not self.service.accepting:
                await self.send(error_frame(frame.id, HubNotRunningError("the WebSocket service is stopping")))
                return
            await self._slots.acquire()  # back-pressure: stop reading while max_inflight run
            self.service.track(asyncio.create_task(self._request(frame), name="bollydog-ws-request"), self._slots)
        elif frame.type == PING:
            await self.send({"type": "pong", "id": frame.id})
        elif frame.type == SUBSCRIBE:
            if not self.service.settings.subscriptions:
                await self.send(error_frame(frame.id, InvalidFrameError("subscriptions are disabled on this server")))
                return
            topics = self.topics + [t for t in dict.fromkeys(frame.topics or ()) if t not in self.topics]
            limit = self.service.settings.max_topics
            if len(topics) > limit:
                await self.send(error_frame(frame.id, InvalidFrameError(
                    f"at most {limit} subscription patterns per connection (max_topics); unsubscribe some first"
                )))
                return
            self.set_topics(topics)
            await self.send({"type": "subscribed", "id": frame.id, "topics": list(self.topics)})
        else:
            if frame.topics is None:
                self.set_topics([])
            else:
                self.set_topics([t for t in self.topics if t not in frame.topics])
            await self.send({"type": "unsubscribed", "id": frame.id, "topics": list(self.topics)})

    # -- requests ------------------------------------------------------------------------------

    async def _request(self, frame: Frame) -> None:
        # This task's context is its own copy: what is set here reaches the message's handlers
        # (admission captures the context) and no other request.
        current_session.set(self.session)
        remote_parent.set(parse_traceparent(frame.traceparent))
        service = self.service
        hub = service.hub
        try:
            message_class = hub.registry.resolve(frame.name or "", imports=False, allowed=service.filter)
            if issubclass(message_class, Event) and not message_class.accept_from_clients:
                raise EventNotAcceptedError(
                    f"{hub.registry.name_of(message_class)} is an Event: clients cannot publish it "
                    "(its class does not set accept_from_clients = True)"
                )
            message = message_class.from_input(frame.fields)
        except MessageError as exc:
            await self.send(error_frame(frame.id, exc))
            return
        try:
            call = await stream(hub, message)
        except Exception as exc:  # refused: queue full, stopping
            await self.send(error_frame(frame.id, exc))
            return
        result: Any = None
        error: BaseException | None = None
        try:
            await self.send(
                {
                    "type": "accepted",
                    "id": frame.id,
                    "message_id": message.iid,
                    "trace_id": message.trace_id,
                    "traceparent": format_traceparent(message.trace_id, message.span_id),
                }
            )
            async for partial in call.partials():
                await self.send({"type": "partial", "id": frame.id, "data": partial})
            result = await call.result()
        except Exception as exc:
            error = exc
        except asyncio.CancelledError:
            if not service.requests.was_cut():
                raise
            # The shutdown cut it. Its outcome may have come with the cut (the hub's own):
            # send it; otherwise say the service stopped. Partials not sent yet are dropped.
            if message.has_outcome():
                error = message.state.exception()
                result = None if error is not None else message.state.result()
            else:
                log.warning(
                    "websocket request %r (%s) cut: still running when the service stopped", frame.id, message.iid
                )
                error = HubNotRunningError("the WebSocket service stopped before this request completed; retry later")
        finally:
            call.close()
        if error is not None:
            await self.send(error_frame(frame.id, error))
        else:
            await self.send({"type": "result", "id": frame.id, "data": result})

    # -- writing -------------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame; a closed connection drops it (the client is gone)."""
        if self.closed:
            return
        try:
            text = encode(frame)
        except Exception as exc:  # a reply that cannot be encoded: say so rather than go silent
            log.error("websocket reply could not be encoded", exc_info=exc)
            text = encode(error_frame(frame.get("id") if isinstance(frame.get("id"), (str, int)) else None, exc))
        async with self._send_lock:
            if not self._open():  # closed while this waited for the lock
                return
            await self._write(text)

    def _open(self) -> bool:
        return not self.closed

    async def _write(self, text: str) -> None:
        """Send ``text`` (the caller holds the send lock) within ``send_timeout``, or drop the
        client; a failed send means the client went away (the reader sees it too)."""
        timeout = self.service.settings.send_timeout
        try:
            await asyncio.wait_for(self.websocket.send_text(text), timeout)
        except TimeoutError:
            log.warning(
                "websocket client %s took no data for %s s (send_timeout): dropping it", self.session.uid, timeout
            )
            self._abort(CLOSE_TOO_SLOW, "client stopped reading")
        except Exception as exc:
            log.debug("websocket send failed: %s: %s", type(exc).__name__, exc)
            self.closed = True

    def _abort(self, code: int, reason: str) -> None:
        """Drop the connection now, without a closing handshake (its buffer is full)."""
        self.closed = True
        while not self._notifications.empty():  # free what it will never read
            self._notifications.get_nowait()
        abort = self.websocket.scope.get(ABORT)
        if abort is not None:
            abort()
        else:  # a server without the hook (a test transport): the close is the best there is
            asyncio.get_running_loop().create_task(self._close_now(code, reason))

    def set_topics(self, topics: list[str]) -> None:
        """Replace the subscription patterns (the service re-indexes its subscribers)."""
        changed = topics != self.topics
        self.topics = topics
        if changed:
            self.service.subscriptions_changed()

    def subscribed(self, topic: str) -> bool:
        return any(topic_matches(pattern, topic) for pattern in self.topics)

    def notify(self, text: str) -> None:
        """Queue a subscription notification; never blocks the caller (a hub handler)."""
        if self.closed:
            return
        try:
            self._notifications.put_nowait(text)
        except asyncio.QueueFull:
            log.warning(
                "websocket subscriber %s is too slow (%d notifications queued): disconnecting",
                self.session.uid, self._notifications.qsize(),
            )
            self.closed = True
            asyncio.get_running_loop().create_task(self._close_now(CLOSE_TOO_SLOW, "subscriber too slow"))

    async def _write_notifications(self) -> None:
        while True:
            text = await self._notifications.get()
            async with self._send_lock:
                if self.closed:
                    return
                await self._write(text)

    async def close(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code``; frames sent afterwards are dropped."""
        if self.closed:
            return
        self.closed = True
        await self._close_now(code, reason)

    async def _close_now(self, code: int, reason: str) -> None:
        async with self._send_lock:
            try:
                await asyncio.wait_for(self.websocket.close(code, reason), self.service.settings.send_timeout)
            except TimeoutError:  # the close frame cannot be written: the client stopped reading
                abort = self.websocket.scope.get(ABORT)
                if abort is not None:
                    abort()
            except Exception as exc:  # already closed by the client
                log.debug("websocket close failed: %s: %s", type(exc).__name__, exc)

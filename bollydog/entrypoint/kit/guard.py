"""uvicorn's protocols with the bounds a hostile client needs: a head deadline, a connection
cap, and a WebSocket handshake that is always answered.

uvicorn starts no timer before a request's head is complete (its keep-alive timer is cancelled
by every byte received), so a client that trickles a header a byte at a time holds its
connection for ever (slowloris); and ``limit_concurrency`` counts requests being answered, not
idle or half-sent connections. :class:`Site <bollydog.entrypoint.kit.site.Site>` serves with the
subclasses here, which add:

* **a head deadline** (``header_timeout``): a connection has that long, from when it opens or
  its previous response ended, to complete a request head; then it is answered 408 (if it sent
  anything) and closed. A WebSocket handshake is a request head too. One :class:`HeadSweep`
  per server enforces it, a quarter of ``header_timeout`` apart: a connection is answered
  between ``header_timeout`` and 1.25 times it;
* **a connection cap** (``max_connections``): open TCP connections of the server, idle,
  slow and upgraded ones included. One more is answered 503 with ``Retry-After`` and closed
  (after a short linger, so that the client reads the answer instead of a reset);
* **a handshake answer**: a WebSocket handshake the websockets library refuses while parsing
  it (a header line over its 8 KiB limit: 431) was never answered by uvicorn, which only
  writes answers to requests the library parsed; the client hung. It gets the library's
  answer and the connection is closed;
* **one send per response**: the connection's transport is a
  :class:`~bollydog.entrypoint.kit.coalesce.CoalescingTransport`, so a response's head and
  body (two writes of uvicorn's) leave in one system call;
* **an abort hook** for the WebSocket entrypoint: the scope of an accepted socket carries
  :data:`ABORT`, the transport's ``abort``, to drop a client that stopped reading (its close
  frame can no longer be written: the send buffer is full).
"""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import dataclass
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bollydog.encoding import dumps
from bollydog.entrypoint.kit.coalesce import CoalescingTransport

__all__ = ["ABORT", "FRESH_GRACE", "HeadSweep", "Limits", "head_sweep", "http_protocol", "websocket_protocol"]

#: Scope key of an accepted WebSocket: a callable that aborts its connection.
ABORT = "bollydog.abort"
#: How long a connection that had no request yet is still read when the server stops: a
#: request its client sent as the stop began is answered (the hub admits it meanwhile).
FRESH_GRACE = 0.05
#: How long a refused connection is read (and discarded) after its 503, so that closing it
#: does not reset the connection before the client has read the answer.
_LINGER = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one server (``None``: unbounded)."""

    header_timeout: float | None = 10.0
    max_connections: int | None = None
    retry_after: int = 1


class Config(uvicorn.Config):
    """uvicorn's configuration with the server's :class:`Limits`, which the protocols read."""

    def __init__(self, app: Any, *, limits: Limits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


def _response(status: str, error: str, message: str, headers: str = "") -> bytes:
    body = dumps({"error": error, "message": message})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{headers}connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_TIMEOUT = _response("408 Request Timeout", "RequestTimeout", "the request head did not arrive in time")


#: ``_Bounded._armed_at`` of a connection with no head pending (never expires).
_DISARMED = math.inf


class HeadSweep:
    """The head deadline of one server's connections: one repeating timer, not one per request.

    Every connection keeps only when its head deadline was armed (``loop.time()``, a float); a
    sweep every quarter of ``timeout`` closes the connections whose head has been pending for
    ``timeout`` or longer. A head is therefore answered between ``timeout`` and ``timeout``
    plus a quarter of it after its connection opened (or its previous response ended), where
    one ``call_later`` per request, armed and cancelled, cost every request its timer.

    ``connections`` is the server's own set (uvicorn's ``ServerState.connections``): uvicorn
    adds a connection when it opens and removes it when it closes or is upgraded to a
    WebSocket, so the sweep looks at exactly the open HTTP connections (an upgraded socket's
    protocol has no head deadline and is passed over).
    """

    def __init__(self, timeout: float, connections: set[Any]) -> None:
        self.timeout = timeout
        self.interval = timeout / 4
        self.connections = connections
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sweep on ``loop`` until :meth:`stop`."""
        self.stop()
        self._timer = loop.call_later(self.interval, self._sweep, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self.interval, self._sweep, loop)
        cutoff = loop.time() - self.timeout
        # A snapshot: closing a transport removes its connection from the set (later, in
        # connection_lost), and a connection may open meanwhile.
        for connection in tuple(self.connections):
            if getattr(connection, "_armed_at", _DISARMED) <= cutoff:
                connection._head_expired()


def head_sweep(limits: Limits, connections: set[Any]) -> HeadSweep | None:
    """The sweep of a server with ``limits`` over its ``connections``; ``None`` without a head
    deadline."""
    return None if limits.header_timeout is None else HeadSweep(limits.header_timeout, connections)


class _Bounded:
    """The head deadline and the connection cap, over one of uvicorn's HTTP protocols.

    It relies on what both of uvicorn's HTTP protocols have: ``config``, ``connections``,
    ``transport``, ``cycle`` (the request being answered, from its head on), ``loop`` and the
    ``connection_made`` / ``data_received`` / ``on_response_complete`` callbacks. The deadline itself is enforced by the server's
    :class:`HeadSweep`, which reads ``_armed_at``.
    """

    config: uvicorn.Config
    connections: set[Any]
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop
    tasks: set[asyncio.Task[Any]]  # the server's requests being answered
    #: When the head deadline was armed (``loop.time()``); :data:`_DISARMED` while none is pending.
    _armed_at = _DISARMED
    _head_bytes = False  # bytes arrived since the deadline was armed
    _refused = False
    _answered = False  # a response of this connection completed
    #: Stopping, this connection had no request yet and may still get the one on its way.
    fresh_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # One send per response, not uvicorn's two (its head, then its body): see coalesce.py.
        super().connection_made(  # type: ignore[misc]
            CoalescingTransport(cast(asyncio.Transport, transport), self.loop, self.tasks)
        )
        limits = cast(Config, self.config).limits
        if limits.max_connections is not None and len(self.connections) > limits.max_connections:
            self._refuse(limits)
            return
        self._armed_at = self.loop.time()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the linger ends
        self._head_bytes = True  # read only while a head is pending
        super().data_received(data)  # type: ignore[misc]

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close when idle. A connection that has not had a request yet was
        most likely opened to send one, which may be on its way: it is read for
        :data:`FRESH_GRACE` more (a request then is answered, then the connection closed),
        instead of a close its client would see as a drop."""
        if self.fresh_pending:
            return
        if self._answered or self.cycle is not None or self._refused or self.transport.is_closing():
            super().shutdown()  # type: ignore[misc]
            return
        self.fresh_pending = True
        self.loop.call_later(FRESH_GRACE, self._shutdown_fresh)

    def _shutdown_fresh(self) -> None:
        self.fresh_pending = False
        if not self.transport.is_closing():
            super().shutdown()  # type: ignore[misc]  # idle: closed; answering: closed after it

    def on_response_complete(self) -> None:
        self._answered = True
        cast(CoalescingTransport, self.transport).response_ended()  # alone: sent now (coalesce.py)
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            # keep-alive: the next head has the same deadline
            self._head_bytes = False
            self._armed_at = self.loop.time()

    def _head_expired(self) -> None:
        """Called by the sweep: the head deadline passed."""
        self._armed_at = _DISARMED
        # Nothing marks a head's end: a request whose head arrived has a cycle being answered
        # (its body may still come: it is not under the deadline), and its response's end
        # arms the deadline again. An upgraded connection has left the server's set.
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if self._head_bytes:
            self.transport.write(_TIMEOUT)
        self.transport.close()

    def _refuse(self, limits: Limits) -> None:
        self._refused = True
        self.transport.write(_response(
            "503 Service Unavailable", "TooManyConnections",
            f"the server has {limits.max_connections} connections open (max_connections); retry later",
            f"retry-after: {limits.retry_after}\r\n",
        ))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER, self.transport.close)


class _BoundedH11(_Bounded, H11Protocol):
    pass


@functools.cache
def http_protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would pick (httptools when installed, else h11), bounded."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with the http extra
        return _BoundedH11

    class BoundedHttpTools(_Bounded, HttpToolsProtocol):
        pass

    return BoundedHttpTools


@functools.cache
def websocket_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's websockets (sans-I/O) protocol, answering refused handshakes and carrying
    :data:`ABORT`; ``"auto"`` (uvicorn's choice, as is) without the websockets library."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return "auto"

    class WebSocket(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None:
                if not self.transport.is_closing():
                    self.transport.write(b"".join(self.conn.data_to_send()))
                    self.transport.close()

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:
                scope[ABORT] = self.transport.abort

    return WebSocket

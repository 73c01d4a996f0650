"""uvicorn's protocols with the bounds a hostile client needs: a head deadline, a connection
cap, and a WebSocket handshake that is always answered.

uvicorn starts no timer before a request's head is complete (its keep-alive timer is cancelled
by every byte received), so a client that trickles a header a byte at a time holds its
connection for ever (slowloris); and ``limit_concurrency`` counts requests being answered, not
idle or half-sent connections. :class:`Site <bollydog.entrypoint.kit.site.Site>` serves with the
subclasses here, which add:

* **a head deadline** (``header_timeout``): a connection has that long, from when it opens or
  its previous response ended, to complete a request head; then it is answered 408 (if it sent
  anything) and closed. A WebSocket handshake is a request head too;
* **a connection cap** (``max_connections``): open TCP connections of the server, idle,
  slow and upgraded ones included. One more is answered 503 with ``Retry-After`` and closed
  (after a short linger, so that the client reads the answer instead of a reset);
* **a handshake answer**: a WebSocket handshake the websockets library refuses while parsing
  it (a header line over its 8 KiB limit: 431) was never answered by uvicorn, which only
  writes answers to requests the library parsed; the client hung. It gets the library's
  answer and the connection is closed;
* **an abort hook** for the WebSocket entrypoint: the scope of an accepted socket carries
  :data:`ABORT`, the transport's ``abort``, to drop a client that stopped reading (its close
  frame can no longer be written: the send buffer is full).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bollydog.encoding import dumps

__all__ = ["ABORT", "Limits", "http_protocol", "websocket_protocol"]

#: Scope key of an accepted WebSocket: a callable that aborts its connection.
ABORT = "bollydog.abort"
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


class _Bounded:
    """The head deadline and the connection cap, over one of uvicorn's HTTP protocols.

    It relies on what both of uvicorn's HTTP protocols have: ``config``, ``connections``,
    ``transport``, ``cycle``, ``loop`` and the ``connection_made`` / ``data_received`` /
    ``on_response_complete`` / ``connection_lost`` callbacks.
    """

    config: uvicorn.Config
    connections: set[Any]
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = False  # bytes of a head arrived since the deadline was armed
    _refused = False

    @property
    def _limits(self) -> Limits:
        return cast(Config, self.config).limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        limits = self._limits
        if limits.max_connections is not None and len(self.connections) > limits.max_connections:
            self._refuse(limits)
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the linger ends
        if self._head_timer is not None:
            self._head_bytes = True
        super().data_received(data)  # type: ignore[misc]

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # keep-alive: the next head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        timeout = self._limits.header_timeout
        if timeout is not None:
            self._head_bytes = False
            self._head_timer = self.loop.call_later(timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
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
    conn: h11.Connection

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()  # a request head arrived (or the connection switched protocol)


@functools.cache
def http_protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would pick (httptools when installed, else h11), bounded."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with the http extra
        return _BoundedH11

    class BoundedHttpTools(_Bounded, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

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

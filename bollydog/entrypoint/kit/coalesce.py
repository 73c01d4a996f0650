"""A connection's transport that sends what one turn of the event loop writes in one piece.

uvicorn's HTTP protocols write a response in two calls, its head at ``http.response.start``
and its body at ``http.response.body``; the transport sends each at once, so every small
response costs two ``send`` system calls and, with ``TCP_NODELAY``, two TCP segments (and
the client's work for each). Sending it in one cut the server's CPU per trivial request by
about a fifth on the loopback (``benchmarks/http.py``, both ends on one machine). The protocols
of :mod:`.guard` give uvicorn this transport instead: a write is kept until the end of the
current turn of the loop (one ``call_soon``), then everything kept is sent in one call.

That is for a loaded server. While no other request is in flight, nothing would join a write
in this turn and the client waits for it: writes go at once, as uvicorn's do (measured at one
connection, keeping them until the response's end cost latency on both loops: one send call
instead of two saves less than the wait adds), and a response that ends with writes kept is
sent as it ends (the protocol calls :meth:`CoalescingTransport.response_ended`). A large write (over :data:`DIRECT`), a close or an end of file sends what is kept first, so the
bytes leave in order and nothing is held past its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any

__all__ = ["DIRECT", "CoalescingTransport"]

#: Writes this large are sent at once (after what is kept): copying them would cost more
#: than the system call it saves.
DIRECT = 64 * 1024


class CoalescingTransport:
    """Wraps ``transport`` (see the module documentation); every other attribute is the
    wrapped transport's."""

    __slots__ = ("_transport", "_loop", "_kept", "_in_flight")

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, in_flight: Sized | None = None
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []
        #: The server's requests being answered (None: not known, always keep). With one, nothing
        #: would join a write in this turn: it is sent at once (see the module documentation).
        self._in_flight = in_flight

    def _alone(self) -> bool:
        return self._in_flight is not None and len(self._in_flight) <= 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        kept = self._kept
        if not kept and self._alone():
            self._transport.write(data)
            return
        if len(data) > DIRECT:
            if kept:
                self.flush()
            self._transport.write(data)
            return
        if not kept:
            self._loop.call_soon(self.flush)
        # A copy of a mutable buffer: it is sent later, after the caller may have changed it.
        kept.append(data if isinstance(data, bytes) else bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def response_ended(self) -> None:
        """A response is complete: alone, what it kept leaves now, not a turn later."""
        if self._kept and self._alone():
            self.flush()

    def flush(self) -> None:
        """Send what is kept now."""
        kept = self._kept
        if not kept:
            return
        data = kept[0] if len(kept) == 1 else b"".join(kept)
        kept.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._kept.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._kept))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

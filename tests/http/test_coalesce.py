"""One send per turn of the loop (``bollydog.entrypoint.kit.coalesce``): the bytes of a
response leave together, in order, and nothing is kept past a close."""

from __future__ import annotations

import asyncio

import httpx

from bollydog.entrypoint.kit.coalesce import DIRECT, CoalescingTransport
from conftest import serve


class Recording(asyncio.Transport):
    """A transport that records each write it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closing = False
        self.eof = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closing, "written after close"
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write_eof(self) -> None:
        self.eof = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1234) if name == "peername" else default


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_writes_of_one_turn_are_sent_in_one_call_in_order() -> None:
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"3")
    assert raw.sent == [] and transport.get_write_buffer_size() == 20
    await next_turn()
    assert raw.sent == [b"HTTP/1.1 200 OK\r\n\r\n3"]
    transport.write(b"next")
    await next_turn()
    assert raw.sent[1:] == [b"next"]


async def test_a_mutable_buffer_is_copied_when_kept() -> None:
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    buffer = bytearray(b"abc")
    transport.write(buffer)
    buffer[:] = b"xyz"
    await next_turn()
    assert raw.sent == [b"abc"]


async def test_a_large_write_goes_at_once_after_what_is_kept() -> None:
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    big = b"x" * (DIRECT + 1)
    transport.write(b"head")
    transport.write(big)
    assert raw.sent == [b"head", big]
    await next_turn()
    assert raw.sent == [b"head", big]


async def test_close_and_end_of_file_send_what_is_kept_first_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    raw = Recording()
    transport = CoalescingTransport(raw, loop)
    transport.write(b"503")
    transport.write_eof()
    assert raw.sent == [b"503"] and raw.eof
    transport.write(b"bye")
    transport.close()
    assert raw.sent == [b"503", b"bye"] and raw.closing
    transport.write(b"late")  # after the close: never sent
    await next_turn()
    assert raw.sent == [b"503", b"bye"]

    raw = Recording()
    transport = CoalescingTransport(raw, loop)
    transport.write(b"dropped")
    transport.abort()
    await next_turn()
    assert raw.sent == [] and raw.aborted


async def test_other_attributes_are_the_transports() -> None:
    raw = Recording()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)
    assert not transport.is_closing()


async def test_a_served_response_leaves_in_one_write() -> None:
    # The server's own transport: every response of a keep-alive connection in one write.
    from uvicorn.protocols.http import httptools_impl

    writes: list[bytes] = []
    writers: list[asyncio.Task[object] | None] = []
    async with serve() as (_, http, client):
        real = httptools_impl.HttpToolsProtocol.connection_made

        def spying(self: httptools_impl.HttpToolsProtocol, transport: asyncio.Transport) -> None:
            real(self, transport)
            inner = getattr(self.transport, "_transport", self.transport)  # the socket's own
            write = inner.write

            def record(data: bytes) -> None:
                writes.append(bytes(data))
                writers.append(asyncio.current_task())
                write(data)

            inner.write = record  # type: ignore[method-assign]

        httptools_impl.HttpToolsProtocol.connection_made = spying  # type: ignore[method-assign]
        try:
            async with httpx.AsyncClient(base_url=http.url) as fresh:
                for text in ("a", "b", "c"):
                    reply = await fresh.get("/demo/svc/echo", params={"text": text})
                    assert reply.status_code == 200 and reply.json()["text"] == text
        finally:
            httptools_impl.HttpToolsProtocol.connection_made = real  # type: ignore[method-assign]
    assert len(writes) == 3
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"}") for w in writes)
    # A lone request's response is sent as it ends, by the request's own task, not a turn of
    # the loop later (a callback runs in no task): the client of a lone connection waits for it.
    assert all(task is not None for task in writers)

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


async def test_with_one_request_in_flight_a_write_goes_at_once_and_with_more_it_is_kept() -> None:
    raw = Recording()
    in_flight = {"this one"}
    transport = CoalescingTransport(raw, asyncio.get_running_loop(), in_flight)
    transport.write(b"head")
    assert raw.sent == [b"head"]  # nothing would join it: its client waits for it
    in_flight.add("another")
    transport.write(b"next")
    transport.write(b"body")
    assert raw.sent == [b"head"]
    transport.response_ended()  # another one still in flight: its writes may join these
    assert raw.sent == [b"head"]
    in_flight.discard("another")
    transport.write(b"after")  # kept behind what is kept: the bytes leave in order
    transport.response_ended()  # alone now: sent as the response ends, not a turn later
    assert raw.sent == [b"head", b"nextbodyafter"]


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


async def test_a_served_response_leaves_in_one_write_under_load_and_at_once_alone() -> None:
    # The server's own transport. Alone, a response's writes go as uvicorn makes them, from the
    # request's own task; with others in flight, each response leaves in one write.
    from uvicorn.protocols.http import httptools_impl

    writes: list[tuple[int, bytes, bool]] = []
    async with serve() as (_, http, client):
        real = httptools_impl.HttpToolsProtocol.connection_made

        def spying(self: httptools_impl.HttpToolsProtocol, transport: asyncio.Transport) -> None:
            real(self, transport)
            inner = getattr(self.transport, "_transport", self.transport)  # the socket's own
            write = inner.write

            def record(data: bytes) -> None:
                writes.append((id(self), bytes(data), asyncio.current_task() is not None))
                write(data)

            inner.write = record  # type: ignore[method-assign]

        httptools_impl.HttpToolsProtocol.connection_made = spying  # type: ignore[method-assign]
        try:
            async with httpx.AsyncClient(base_url=http.url) as fresh:
                reply = await fresh.get("/demo/svc/echo", params={"text": "alone"})
                assert reply.status_code == 200
            alone, writes[:] = list(writes), []
            clients = [httpx.AsyncClient(base_url=http.url) for _ in range(6)]
            try:
                replies = await asyncio.gather(*(c.get("/demo/svc/slow", params={"delay": 0.15}) for c in clients))
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
            assert all(r.status_code == 200 for r in replies)
        finally:
            httptools_impl.HttpToolsProtocol.connection_made = real  # type: ignore[method-assign]
    assert b"".join(data for _, data, _ in alone).startswith(b"HTTP/1.1 200 OK\r\n")
    assert all(in_task for _, _, in_task in alone)  # at once, not a turn of the loop later
    per_connection: dict[int, list[bytes]] = {}
    for connection, data, _ in writes:
        per_connection.setdefault(connection, []).append(data)
    assert len(per_connection) == 6
    loaded = [chunks for chunks in per_connection.values()]
    # Six requests were in flight together (each waits 0.15 s): most responses left whole.
    whole = [c for c in loaded if len(c) == 1 and c[0].startswith(b"HTTP/1.1 200 OK\r\n")]
    assert len(whole) >= 4, loaded

"""MCP over this process's stdin and stdout, for an agent that launches ``bollydog mcp``.

The SDK's ``stdio_server`` serves the protocol; two things are added around it. Stdin is read
by the event loop instead of a worker thread: a thread blocked in ``read()`` cannot be
cancelled, so SIGTERM would wait for the client's next line. And ``sys.stdout`` points at
stderr while serving (the SDK moves fd 1 there too): a ``print()`` in a handler must never reach
the protocol stream, not even when its buffer is flushed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any, BinaryIO

from mcp.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server

__all__ = ["serve_stdio"]

#: Longest protocol line accepted from the client (large tool arguments fit).
MAX_LINE = 16 * 1024 * 1024


class _Lines:
    """Text lines of a pipe, read without a thread; iteration ends at end of file."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def __aiter__(self) -> "_Lines":
        return self

    async def __anext__(self) -> str:
        line = await self.reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


async def _stdin_lines() -> tuple[_Lines, asyncio.BaseTransport] | None:
    """Stdin as lines read by the loop; None when it is no pipe (a file: the SDK's way works)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    # A duplicate: closing the transport must not close fd 0 under the rest of the process.
    pipe: BinaryIO = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except (ValueError, OSError):  # not a pipe, socket or terminal
        pipe.close()
        return None
    return _Lines(reader), transport


async def serve_stdio(server: Server[Any]) -> None:
    """Serve ``server`` on stdin/stdout until the client closes stdin (or this is cancelled)."""
    stdin = await _stdin_lines()
    try:
        lines: Any = stdin[0] if stdin is not None else None  # stdio_server only iterates it
        async with stdio_server(stdin=lines) as (read, write):
            with contextlib.redirect_stdout(sys.stderr):
                # listChanged: a hot reload tells the client its tools changed.
                options = server.create_initialization_options(NotificationOptions(tools_changed=True))
                await server.run(read, write, options)
    finally:
        if stdin is not None:
            stdin[1].close()

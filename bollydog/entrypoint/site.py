"""A uvicorn server inside an entrypoint's lifecycle: bind, serve in a task, stop.

Binding happens here, not in uvicorn: a busy port is a :class:`ConfigError` naming the option
to change (uvicorn would ``sys.exit``), and port 0 works (read the bound one from
:attr:`Site.port`). uvicorn installs no signal handlers: the bollydog CLI owns SIGINT/SIGTERM.
There is no ASGI lifespan: the entrypoint's own start and stop are the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from bollydog.errors import ConfigError

__all__ = ["Site"]

log = logging.getLogger("bollydog.site")


class _Server(uvicorn.Server):
    """uvicorn without signal handling, and with an event set once it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process owner (bollydog CLI) handles SIGINT/SIGTERM, not the server

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def listen(host: str, port: int, backlog: int, *, section: str, env: str) -> socket.socket:
    """A bound TCP socket. ``proto`` must be IPPROTO_TCP, or asyncio leaves Nagle on for the
    accepted connections (keep-alive responses then wait for delayed ACKs, ~40 ms each)."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ConfigError(
            f"{section}: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"change {section}.port / {env} (0 picks a free port) or host"
        ) from None


class Site:
    """Serves ``app`` on ``host:port`` from :meth:`start` to :meth:`stop`."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        section: str,
        env: str,
        log_level: str = "info",
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.section, self.env = section, env
        self._port = port
        self.config = uvicorn.Config(
            app,
            log_config=None,  # bollydog's logging configuration applies to uvicorn's loggers
            log_level=log_level.lower(),
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(math.ceil(shutdown_timeout), 1),
        )
        self._server = _Server(self.config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port served: the configured one, or after start the one bound (port 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Bind, start uvicorn, return once it accepts connections."""
        sock = listen(self.host, self._port, self.config.backlog, section=self.section, env=self.env)
        self._port = sock.getsockname()[1]
        self._task = task = asyncio.create_task(self._serve(sock), name=f"bollydog-{self.section}")
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await task  # raises why uvicorn could not start
            raise ConfigError(f"{self.section}: uvicorn stopped during startup on {self.url}")

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when startup fails; not in a library
            raise ConfigError(f"{self.section}: uvicorn failed to start on {self.url} (see the log above)") from None
        finally:
            sock.close()

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (up to the shutdown timeout), return."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await task
        except Exception as exc:  # noqa: BLE001 - stopping must not fail the hub's shutdown
            log.error("%s server stopped with an error: %s", self.section, exc)

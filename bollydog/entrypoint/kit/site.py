"""One listener for every entrypoint: a bound socket and uvicorn serving an ASGI app on it.

HTTP, WebSocket and MCP over HTTP all serve through a :class:`Site`, so they bind, start and
stop the same way:

* binding happens here, not in uvicorn: a busy port (or a host that does not resolve) is a
  :class:`~bollydog.errors.ConfigError` naming ``host:port`` and the option to change, where
  uvicorn would ``sys.exit``; port 0 picks a free port (read it back from :attr:`Site.port`);
* the socket is created with ``IPPROTO_TCP``, so asyncio sets ``TCP_NODELAY`` on every accepted
  connection (without it, Nagle's algorithm holds a reply's second write until the client's
  delayed ACK, ~40 ms); an IPv6 socket is IPv6 only;
* uvicorn installs no signal handlers: the process owner (the bollydog CLI) handles
  SIGINT/SIGTERM. There is no ASGI lifespan: the entrypoint's start and stop are the lifespan;
* every connection is bounded (:mod:`.guard`): ``header_timeout`` seconds to send a request
  head (then 408 and closed), at most ``max_connections`` open at once (then 503), and a
  WebSocket handshake the library refuses is answered (431 for a header over 8 KiB);
* :meth:`Site.start` returns once uvicorn accepts connections; :meth:`Site.stop` stops
  accepting, lets open connections finish within ``shutdown_timeout`` and returns when uvicorn
  is done; :meth:`Site.force_exit` stops waiting for them (a forced shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from typing import Any, Protocol

import uvicorn
from starlette.types import ASGIApp

from bollydog.entrypoint.kit.guard import Config, Limits, http_protocol, websocket_protocol
from bollydog.errors import ConfigError

__all__ = ["Site", "listen"]

log = logging.getLogger("bollydog.site")


def listen(host: str, port: int, backlog: int, *, section: str, env: str) -> socket.socket:
    """A bound, listening TCP socket on ``host:port``; :class:`ConfigError` when it cannot be.

    ``section`` and ``env`` name the config key and the environment variable of the port, for
    the error message.
    """
    sock = None
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        # IPPROTO_TCP named here, whatever the resolver answered (some answer 0): asyncio sets
        # TCP_NODELAY only on connections accepted from a socket created with it.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        return sock
    except OSError as exc:  # gaierror (unknown host) included
        if sock is not None:
            sock.close()
        raise ConfigError(
            f"{section}: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"change {section}.port / {env} (0 picks a free port) or host"
        ) from None


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


class _Serving(Protocol):
    """What a site does between start and stop."""

    async def stop(self) -> None: ...

    def force_exit(self) -> None: ...


class _NotServing:
    """Before start and after stop: nothing to stop."""

    async def stop(self) -> None:
        return None

    def force_exit(self) -> None:
        return None


class _Running:
    def __init__(self, server: _Server, task: asyncio.Task[None], section: str) -> None:
        self.server, self.task, self.section = server, task, section

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await self.task
        except Exception as exc:  # noqa: BLE001 - stopping must not fail the hub's shutdown
            log.error("%s server stopped with an error: %s", self.section, exc)

    def force_exit(self) -> None:
        self.server.force_exit = True


class Site:
    """Serves an ASGI app on ``host:port`` from :meth:`start` to :meth:`stop`.

    ``section`` and ``env`` name the entrypoint's config key and port variable (for errors).
    ``shutdown_timeout`` bounds uvicorn's wait for open connections on stop (whole seconds,
    at least 1). ``header_timeout`` (seconds, ``None``: none), ``max_connections`` (open TCP
    connections, ``None``: no cap) and ``retry_after`` (of the cap's 503) are the
    :class:`~bollydog.entrypoint.kit.guard.Limits` of every connection. The other keywords are
    uvicorn's: ``access_log``, ``limit_concurrency``, ``ws_max_size``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        section: str,
        env: str,
        log_level: str = "info",
        shutdown_timeout: float = 10.0,
        access_log: bool = False,
        limit_concurrency: int | None = None,
        ws_max_size: int | None = None,
        header_timeout: float | None = 10.0,
        max_connections: int | None = None,
        retry_after: int = 1,
    ) -> None:
        self.host = host
        self.section, self.env = section, env
        self.log_level = log_level.lower()
        self.shutdown_timeout = shutdown_timeout
        self.access_log = access_log
        self.limit_concurrency = limit_concurrency
        self.ws_max_size = ws_max_size
        self.limits = Limits(header_timeout, max_connections, retry_after)
        self._port = port
        self._bound_port = 0  # 0: not bound (a bound port is never 0)
        self._serving: _Serving = _NotServing()

    @property
    def port(self) -> int:
        """The port the server is listening on.

        If the site has not been started yet, this is the requested port (which might be 0
        for a port picked at start). After a stop it stays the port that was bound.
        """
        return self._bound_port or self._port

    def url(self, scheme: str = "http", path: str = "") -> str:
        """``scheme://host:port`` followed by ``path``, an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self, app: ASGIApp) -> None:
        """Bind, start uvicorn serving ``app``, return once it accepts connections."""
        config = self._config(app)
        if self.access_log:  # an earlier server with access_log off may have detached the logger
            logging.getLogger("uvicorn.access").propagate = True
        sock = listen(self.host, self._port, config.backlog, section=self.section, env=self.env)
        self._bound_port = int(sock.getsockname()[1])
        server = _Server(config)
        task = asyncio.create_task(self._serve(server, sock), name=f"bollydog-{self.section}")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await task  # raises why uvicorn could not start
            raise ConfigError(f"{self.section}: uvicorn stopped during startup on {self.url()}")
        self._serving = _Running(server, task, self.section)

    async def stop(self) -> None:
        """Stop accepting, let open connections finish (up to ``shutdown_timeout``), return."""
        serving, self._serving = self._serving, _NotServing()
        await serving.stop()

    def force_exit(self) -> None:
        """A forced shutdown: a :meth:`stop` under way stops waiting for open connections."""
        self._serving.force_exit()

    def _config(self, app: ASGIApp) -> uvicorn.Config:
        options: dict[str, Any] = {}
        if self.ws_max_size is not None:
            options["ws_max_size"] = self.ws_max_size
        return Config(
            app,
            limits=self.limits,
            http=http_protocol(),
            ws=websocket_protocol(),
            log_config=None,  # bollydog's logging configuration applies to uvicorn's loggers
            log_level=self.log_level,
            access_log=self.access_log,
            lifespan="off",
            limit_concurrency=self.limit_concurrency,
            timeout_graceful_shutdown=max(math.ceil(self.shutdown_timeout), 1),
            **options,
        )

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when startup fails; not in a library
            raise ConfigError(
                f"{self.section}: uvicorn failed to start on {self.url()} (see the log above)"
            ) from None
        finally:
            sock.close()

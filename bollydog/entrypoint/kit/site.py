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
  head (then 408 and closed; one sweep per server, a quarter of ``header_timeout`` apart,
  enforces it for every connection), at most ``max_connections`` open at once (then 503), and a
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

from bollydog.entrypoint.kit.guard import Config, Limits, head_sweep, http_protocol, websocket_protocol
from bollydog.errors import ConfigError
from bollydog.reload.handoff import announce, inherited_socket

__all__ = ["HostedSite", "Site", "listen"]

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
    """uvicorn without signal handling, with an event set once it accepts connections, and
    the head deadline's sweep over its connections while it serves."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.sweep = head_sweep(config.limits, self.server_state.connections)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process owner (bollydog CLI) handles SIGINT/SIGTERM, not the server

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.sweep is not None:
            self.sweep.start(asyncio.get_running_loop())
        await super().startup(sockets=sockets)
        self.ready.set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().serve(sockets=sockets)
        finally:
            if self.sweep is not None:
                self.sweep.stop()


class _Serving(Protocol):
    """What a site does between start and stop."""

    async def stop(self) -> None: ...

    def force_exit(self) -> None: ...

    def stop_accepting(self) -> None: ...

    def settling(self) -> bool: ...


class _NotServing:
    """Before start and after stop: nothing to stop."""

    async def stop(self) -> None:
        return None

    def force_exit(self) -> None:
        return None

    def stop_accepting(self) -> None:
        return None

    def settling(self) -> bool:
        return False


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

    def stop_accepting(self) -> None:
        # What uvicorn's shutdown starts with, done now: no new connection, idle keep-alive
        # connections closed, busy ones closed after their response.
        for server in getattr(self.server, "servers", ()):
            server.close()
        for connection in list(self.server.server_state.connections):
            connection.shutdown()

    def settling(self) -> bool:
        return any(getattr(c, "fresh_pending", False) for c in self.server.server_state.connections)


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
        # Under `bollydog service --reload`, a process taking over from another serves the
        # socket its supervisor holds: the listening socket never closes during a restart.
        key = f"{self.section}/{self.host}:{self._port}"
        sock = inherited_socket(key)
        if sock is None:
            sock = listen(self.host, self._port, config.backlog, section=self.section, env=self.env)
            announce("listening", fds=[sock.fileno()], key=key)
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

    def stop_accepting(self) -> None:
        """Accept no new connection from now on and end the open ones after their current
        response (idle keep-alive connections at once). uvicorn itself notices a stop only at
        its next tick, a tenth of a second later, and requests arriving meanwhile would be
        refused; a process taking over the same listening socket gets them instead."""
        self._serving.stop_accepting()

    def settling(self) -> bool:
        """After :meth:`stop_accepting`: whether a connection that had no request yet is still
        read for the one its client may have sent (``guard.FRESH_GRACE``)."""
        return self._serving.settling()

    def _config(self, app: ASGIApp) -> Config:
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


class HostedSite(Site):
    """A site whose app another server serves: an entrypoint mounted into a host ASGI app
    (:mod:`bollydog.entrypoint.asgi`). It binds nothing and runs no uvicorn; calling it (an
    ASGI app) forwards to the entrypoint's app from :meth:`start` on, and answers 503 before.

    :meth:`stop` waits for the requests going through it (up to ``shutdown_timeout``), as
    uvicorn waits for open connections; the app keeps answering meanwhile and afterwards (the
    entrypoint itself refuses new work once stopping, and the probes say why).
    """

    def __init__(self, *, section: str) -> None:
        super().__init__("", 0, section=section, env="")
        self._app: ASGIApp | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._forced = asyncio.Event()

    @property
    def port(self) -> int:
        """0: the host's server owns the socket."""
        return 0

    def url(self, scheme: str = "http", path: str = "") -> str:
        return f"(mounted){path}"

    async def start(self, app: ASGIApp) -> None:
        self._forced.clear()
        self._app = app

    async def stop(self) -> None:
        if self._inflight:
            idle = asyncio.ensure_future(self._idle.wait())
            forced = asyncio.ensure_future(self._forced.wait())
            await asyncio.wait([idle, forced], timeout=self.shutdown_timeout, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            forced.cancel()

    def force_exit(self) -> None:
        self._forced.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app
        if app is None:
            await _not_started(self.section, scope, receive, send)
            return
        self._inflight += 1
        self._idle.clear()
        try:
            await app(scope, receive, send)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()


async def _not_started(section: str, scope: Any, receive: Any, send: Any) -> None:
    """Before the host's lifespan started the hub: 503 (HTTP) or a refused socket."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": "not started"})
        return
    from starlette.responses import JSONResponse

    body = {"error": "HubNotRunningError",
            "message": f"{section}: not started; the host application's lifespan starts it"}
    await JSONResponse(body, 503, headers={"retry-after": "1"})(scope, receive, send)

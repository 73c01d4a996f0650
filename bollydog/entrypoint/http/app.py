"""HttpService: the HTTP entrypoint, a Starlette app served by uvicorn in the hub's lifecycle.

Config section (every key optional; see docs/http.md)::

    http:
      app: !module bollydog.entrypoint.http.app.HttpService
      host: ${BOLLYDOG_HTTP_SERVICE_HOST:127.0.0.1}
      port: ${BOLLYDOG_HTTP_SERVICE_PORT:8000}
      router_mapping:
        example.taskcount: {methods: [GET], aliases: [/count]}

Lifecycle: starting the service binds the socket (port 0 picks a free port, read it back from
:attr:`HttpService.port`), starts uvicorn in a task and returns once it accepts connections;
stopping it stops accepting, lets in-flight requests finish, and returns when uvicorn is done.
A request still running when the hub's grace period is over is answered 503 (JSON, with
``Retry-After``) and logged once. uvicorn installs no signal handlers: the bollydog CLI owns
SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bollydog.types import Entrypoint
from bollydog.entrypoint.auth import (
    authenticate,
    load_private_key,
    load_public_key,
    session_from_claims,
    token_from_headers,
)
from bollydog.entrypoint.http.endpoint import MessageEndpoint
from bollydog.entrypoint.http.openapi import build_openapi
from bollydog.entrypoint.http.qos import OutcomeStore, describe_outcome
from bollydog.entrypoint.http.responses import JSON, error_response, http_exception, json_response
from bollydog.entrypoint.http.routes import RouteSpec, build_routes
from bollydog.entrypoint.http.settings import HttpSettings
from bollydog.errors import ConfigError, HubNotRunningError
from bollydog.models.base import Session

__all__ = ["HttpService"]

log = logging.getLogger("bollydog.http")


class _Server(uvicorn.Server):
    """uvicorn without signal handling, and with an event set once it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield  # the process owner (bollydog CLI) handles SIGINT/SIGTERM, not the server

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class _InFlight:
    """ASGI layer that keeps the running requests, so that a shutdown past its grace period
    can cut them. A request cancelled while the service stops (by :meth:`cut`, or by uvicorn's
    own ``timeout_graceful_shutdown``) is answered 503 (or, if its response had started,
    ended) and logged on one line, instead of uvicorn's plain-text 500 and traceback."""

    def __init__(self, app: ASGIApp, service: "HttpService") -> None:
        self.app = app
        self.service = service
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.tasks.add(task)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            task.uncancel()  # the shutdown cut it: it ends here, answered
            await self._answer_cut(scope, receive, send, started)
        finally:
            self.tasks.discard(task)

    def cut(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    async def _answer_cut(self, scope: Scope, receive: Receive, send: Send, started: bool) -> None:
        log.warning(
            "%s %s cut: still running when the shutdown grace ran out; %s",
            scope.get("method", "-"), scope.get("path", "-"), "stream ended" if started else "answered 503",
        )
        try:
            if started:  # too late for a status: end the body so the client sees the end
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                error = HubNotRunningError("the server stopped before this request completed; retry later")
                response = error_response(error, retry_after=self.service.settings.retry_after)
                await response(scope, receive, send)
        except Exception as exc:  # the client is gone, or a fixed-length body was cut short
            log.debug("answering a cut request failed: %s: %s", type(exc).__name__, exc)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket; its ``proto`` must be IPPROTO_TCP, or asyncio leaves Nagle on
    for accepted connections (and keep-alive responses then wait for delayed ACKs, ~40 ms)."""
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
            f"http: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "change http.port / BOLLYDOG_HTTP_SERVICE_PORT (0 picks a free port) or host"
        ) from None


class HttpService(Entrypoint):
    """Serves every Command of the hub over HTTP (see the module documentation).

    Options are the keys of :class:`~bollydog.entrypoint.http.settings.HttpSettings`; an
    option not given is read from ``BOLLYDOG_HTTP_SERVICE_<NAME>``.
    """

    #: Largest request body accepted (413 beyond).
    max_body_size = 1 << 20

    def __init__(self, *, hub: Any = None, **options: Any) -> None:
        super().__init__(hub=hub, **options)
        self.settings = HttpSettings.from_options(options)
        settings = self.settings
        self.public_key = load_public_key(settings.public_key) if settings.public_key else None
        self.private_key = load_private_key(settings.private_key) if settings.private_key else None
        self.outcomes = OutcomeStore(settings.outcomes_max)
        self.routes: list[RouteSpec] = []
        self.app: Starlette | None = None
        self._port = settings.port
        self._server: _Server | None = None
        self._serve_task: asyncio.Task | None = None
        self._inflight: _InFlight | None = None
        self._openapi: bytes | None = None
        #: The MCP endpoint at ``mcp_path`` (None when not configured), see docs/mcp.md.
        self.mcp: Any = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        """The port served: the configured one, or after start the one bound (port 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def session_for(self, headers: Mapping[str, str]) -> Session:
        """The session of a request: from its JWT when auth is on, else anonymous.

        Raises :class:`~bollydog.entrypoint.auth.AuthError` for a missing (when required) or
        bad token.
        """
        if self.public_key is None:
            return Session(data={"anonymous": True})
        s = self.settings
        claims = authenticate(
            token_from_headers(headers),
            public_key=self.public_key,
            required=s.auth_required,
            algorithms=s.jwt_algorithms,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            leeway=s.jwt_leeway,
        )
        return session_from_claims(claims)

    def build_app(self) -> Starlette:
        """The Starlette application for the hub's current registry."""
        if not self.hub:
            raise ConfigError("HttpService has no hub: add it with hub.add_entrypoint(service)")
        self.routes = build_routes(self.hub.registry, self.settings)
        routes: list[Route] = []
        for spec in self.routes:
            endpoint = MessageEndpoint(spec, self)
            for path in spec.paths:
                routes.append(Route(path, endpoint.handle, methods=list(spec.methods), name=f"{spec.key}:{path}"))
        routes.append(Route("/_bollydog/messages/{iid}", self._outcome, methods=["GET"]))
        if self.settings.openapi:
            routes.append(Route("/openapi.json", self._openapi_endpoint, methods=["GET"]))
        mcp_path = self.settings.mcp_path
        if mcp_path:
            from bollydog.entrypoint.mcp.http import mount  # needs the mcp extra

            taken = {r.path for r in routes} | {"/openapi.json"}
            if mcp_path in taken or not mcp_path.startswith("/") or mcp_path.startswith("/_bollydog/"):
                raise ConfigError(f"http.mcp_path: {mcp_path} is taken or reserved; choose another path like /mcp")
            self.mcp = mount(self)
            routes.append(Route(mcp_path, endpoint=self.mcp))
        self._openapi = None
        return Starlette(
            routes=routes,
            exception_handlers={HTTPException: http_exception, Exception: self._server_error},
        )

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the served routes."""
        s = self.settings
        return build_openapi(self.routes, title=s.title, version=s.version, auth=self.public_key is not None)

    # -- lifecycle ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.app = self.build_app()
        self._inflight = _InFlight(self.app, self)
        s = self.settings
        config = uvicorn.Config(
            self._inflight,
            log_config=None,  # bollydog's logging configuration applies to uvicorn's loggers
            log_level=s.log_level.lower(),
            access_log=s.access_log,
            lifespan="off",  # the hub's lifecycle is the lifespan
            limit_concurrency=s.limit_concurrency,
            timeout_graceful_shutdown=s.shutdown_timeout
            if s.shutdown_timeout is not None
            else self._backstop(),
        )
        if s.access_log:  # an earlier server with access_log off may have detached the logger
            logging.getLogger("uvicorn.access").propagate = True
        if self.mcp is not None:
            await self.mcp.start()
        try:
            sock = _listen(s.host, s.port, config.backlog)
        except ConfigError:
            if self.mcp is not None:
                await self.mcp.stop(0)
            raise
        self._port = sock.getsockname()[1]
        self._server = server = _Server(config)
        self._serve_task = asyncio.create_task(self._serve(server, sock), name="bollydog-http")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait([ready, self._serve_task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._serve_task  # raises why uvicorn could not start
            raise ConfigError(f"http: uvicorn stopped during startup on {s.host}:{self._port}")
        log.info("HTTP entrypoint on %s (%d routes)", self.url, len(self.routes))

    def _shutdown_grace(self) -> float:
        s = self.settings
        return s.shutdown_timeout if s.shutdown_timeout is not None else getattr(self.hub, "shutdown_grace", 10.0)

    async def _serve(self, server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when startup fails; not in a library
            raise ConfigError(f"http: uvicorn failed to start on {self.url} (see the log above)") from None
        finally:
            sock.close()

    def _backstop(self) -> float:
        """uvicorn's own shutdown timeout: past the hub's grace period and compensation, the hub
        has cut every request (:meth:`abort_inflight`); this only bounds a stuck client."""
        hub = self.hub
        return float(getattr(hub, "shutdown_grace", 10.0)) + float(getattr(hub, "compensation_grace", 0.0)) + 1.0

    def abort_inflight(self, *, forced: bool = False) -> None:
        """The hub's grace period is over: answer the requests still running 503 now."""
        if self._inflight is not None:
            self._inflight.cut()
        if forced and self._server is not None:
            self._server.force_exit = True  # stop waiting for connections to close

    async def on_stop(self) -> None:
        server, task = self._server, self._serve_task
        if server is None or task is None:
            return
        if self._inflight is not None:
            self._inflight.stopping = True
        if self.mcp is not None:  # first: it ends the MCP streams uvicorn would wait for
            await self.mcp.stop(self._shutdown_grace())
        server.should_exit = True
        try:
            await task
        except Exception as exc:  # noqa: BLE001 - stopping must not fail the hub's shutdown
            log.error("HTTP server stopped with an error: %s", exc)
        self._server = self._serve_task = None

    # -- built-in routes ------------------------------------------------------------------------

    async def _openapi_endpoint(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = json_response(self.openapi()).body
        return Response(self._openapi, 200, media_type=JSON)

    async def _outcome(self, request: Request) -> Response:
        try:
            session = self.session_for(request.headers)
        except Exception as exc:
            return error_response(exc)
        message = self.outcomes.get(request.path_params["iid"])
        # With auth on, an outcome is visible only to the user who sent the message.
        if message is None or (self.public_key is not None and message.created_by != session.username):
            return json_response(
                {"error": "NotFound", "message": "unknown message id (or no longer kept)"}, 404
            )
        return json_response(describe_outcome(message, debug=self.settings.debug))

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        return error_response(exc, debug=self.settings.debug, context=f"{request.method} {request.url.path}")

"""HttpService: the HTTP entrypoint, a Starlette app served by uvicorn in the hub's lifecycle.

Config section (every key optional; see docs/http.md)::

    http:
      app: !module bollydog.entrypoint.http.app.HttpService
      host: ${BOLLYDOG_HTTP_SERVICE_HOST:127.0.0.1}
      port: ${BOLLYDOG_HTTP_SERVICE_PORT:8000}
      router_mapping:
        example.taskcount: {methods: [GET], aliases: [/count]}

Lifecycle (the kit's :class:`~bollydog.entrypoint.kit.site.Site`, as every entrypoint's):
starting the service binds the socket (port 0 picks a free port, read it back from
:attr:`HttpService.port`), starts uvicorn in a task and returns once it accepts connections;
stopping it stops accepting, lets in-flight requests finish, and returns when uvicorn is done.
A request still running when the hub's grace period is over is answered 503 (JSON, with
``Retry-After``) and logged once. uvicorn installs no signal handlers: the bollydog CLI owns
SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bollydog.entrypoint.http.endpoint import MessageEndpoint
from bollydog.entrypoint.http.openapi import build_openapi
from bollydog.entrypoint.kit.asyncapi import build_asyncapi
from bollydog.entrypoint.http.qos import OutcomeStore, describe_outcome
from bollydog.entrypoint.http.responses import JSON, error_response, http_exception, json_response
from bollydog.entrypoint.http.routes import MessageRoute, RouteSpec, build_routes
from bollydog.entrypoint.http.settings import HttpSettings
from bollydog.entrypoint.kit.admission import InFlight
from bollydog.entrypoint.kit.auth import authenticator, load_private_key
from bollydog.entrypoint.kit.site import Site
from bollydog.errors import ConfigError, HubNotRunningError
from bollydog.models.base import Session
from bollydog.types import Entrypoint, HubT

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.mcp.http import StreamableHttp

__all__ = ["HttpService"]

log = logging.getLogger("bollydog.http")


class _Front:
    """The ASGI app the site serves: a message route's request goes straight to its endpoint,
    anything else through the Starlette app; and it keeps the running requests (in
    ``requests``), so that a shutdown past its grace period can cut them.

    Straight, because a message route's path is a fixed string (aliases take no parameters,
    and no two routes share a path: :func:`build_routes`): one dict lookup finds it where
    Starlette would run its two middleware layers, match the path against every route in turn
    and wrap the endpoint twice more, a third of the application's own time for a trivial
    request. What the lookup does not find (another method, an unknown path, a trailing
    slash, a request below a host's mount point) takes the Starlette path and gets its
    answer: 405 with ``Allow``, 404 naming the route, the built-in routes.

    A request cancelled while the service stops (by the cut, or by uvicorn's own
    ``timeout_graceful_shutdown``) is answered 503 (or, if its response had started, ended)
    and logged on one line, instead of uvicorn's plain-text 500 and traceback."""

    def __init__(self, app: ASGIApp, direct: Mapping[str, _Direct], requests: InFlight, retry_after: int) -> None:
        self.app = app
        #: The message routes by path (Starlette's ``get_route_path`` of a scope without ``root_path``).
        self.direct = direct
        self.requests = requests
        self.retry_after = retry_after

    def serve(self, app: ASGIApp, direct: Mapping[str, _Direct]) -> None:
        """Serve another route table from the next request on (a hot reload)."""
        self.app, self.direct = app, direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        route = None if scope.get("root_path") else self.direct.get(scope["path"])
        task = self.requests.enter()
        try:
            if route is not None and scope["method"] in route.methods:
                scope["app"] = self.app  # what Starlette sets: request.app
                response = await route.endpoint.handle(Request(scope, receive))
                await response(scope, receive, tracked)
            else:
                await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not self.requests.was_cut(stopping=True):
                raise
            await self._answer_cut(scope, receive, send, started)  # it ends here, answered
        finally:
            self.requests.leave(task)

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
                response = error_response(error, retry_after=self.retry_after, quiet=True)
                await response(scope, receive, send)
        except Exception as exc:  # the client is gone, or a fixed-length body was cut short
            log.debug("answering a cut request failed: %s: %s", type(exc).__name__, exc)


@dataclass(frozen=True, slots=True)
class _Direct:
    """A message route's path, served without Starlette's router: its methods and endpoint."""

    methods: frozenset[str]
    endpoint: MessageEndpoint


class HttpService(Entrypoint):
    """Serves every Command of the hub over HTTP (see the module documentation).

    Options are the keys of :class:`~bollydog.entrypoint.http.settings.HttpSettings`; an
    option not given is read from ``BOLLYDOG_HTTP_SERVICE_<NAME>``.
    """

    #: Largest request body accepted (413 beyond).
    max_body_size = 1 << 20

    options_model = HttpSettings

    def __init__(self, *, hub: HubT | None = None, **options: Any) -> None:
        super().__init__(hub=hub, **options)
        self.settings = settings = HttpSettings.from_options(options)
        #: The session of each request, from its JWT when ``public_key`` is set.
        self.auth = authenticator(settings)
        self.private_key = load_private_key(settings.private_key) if settings.private_key else None
        self.outcomes = OutcomeStore(settings.outcomes_max)
        self.routes: list[RouteSpec] = []
        #: The requests being answered: what stopping waits for and, past the grace, cuts.
        self.requests = InFlight()
        self.site = Site(
            settings.host, settings.port, section="http", env="BOLLYDOG_HTTP_SERVICE_PORT",
            log_level=settings.log_level, access_log=settings.access_log,
            limit_concurrency=settings.limit_concurrency, header_timeout=settings.header_timeout,
            max_connections=settings.max_connections, retry_after=settings.retry_after,
        )
        #: The OpenAPI document by the ``root_path`` it is served under (its ``servers`` entry).
        self._openapi: dict[str, bytes] = {}
        self._asyncapi = b""
        self._app: _Front | None = None
        #: The message routes of the last :meth:`build_app`, by path (see :class:`_Front`).
        self._direct: dict[str, _Direct] = {}
        self.serves_metrics = settings.probes
        #: The MCP endpoint at ``mcp_path`` (None when not configured), see docs/mcp.md.
        self.mcp: "StreamableHttp | None" = None

    # -- public ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        """The port served (see :attr:`Site.port <bollydog.entrypoint.kit.site.Site.port>`):
        the configured one until started, then the one bound (``port: 0``)."""
        return self.site.port

    @property
    def url(self) -> str:
        return self.site.url("http")

    def session_for(self, headers: Mapping[str, str]) -> Session:
        """The session of a request: from its JWT when auth is on, else anonymous.

        Raises :class:`~bollydog.entrypoint.auth.AuthError` for a missing (when required) or
        bad token.
        """
        return self.auth.session(headers)

    def build_app(self, *, mcp: "StreamableHttp | None" = None) -> Starlette:
        """The Starlette application for the hub's current registry (``mcp``: keep serving
        this MCP endpoint instead of making a new one)."""
        if not self.hub:
            raise ConfigError("HttpService has no hub: add it with hub.add_entrypoint(service)")
        self.routes = build_routes(self.hub.registry, self.settings)
        routes: list[Route] = []
        direct: dict[str, _Direct] = {}
        for spec in self.routes:
            endpoint = MessageEndpoint(spec, self)
            for path in spec.paths:
                routes.append(MessageRoute(path, endpoint.handle, methods=spec.methods, name=f"{spec.key}:{path}"))
                direct[path] = _Direct(frozenset(spec.methods), endpoint)
        self._direct = direct
        routes.append(Route("/_bollydog/messages/{iid}", self._outcome, methods=["GET"]))
        routes.append(Route("/_bollydog/reload", self._reload_status, methods=["GET"]))
        if self.settings.openapi:
            routes.append(Route("/openapi.json", self._openapi_endpoint, methods=["GET"]))
            routes.append(Route("/asyncapi.json", self._asyncapi_endpoint, methods=["GET"]))
        if self.settings.probes:
            routes.extend(self._probe_routes(routes))
        mcp_path = self.settings.mcp_path
        if mcp_path:
            from bollydog.entrypoint.mcp.http import mount  # needs the mcp extra

            taken = {r.path for r in routes} | {"/openapi.json", "/asyncapi.json"}
            if mcp_path in taken or not mcp_path.startswith("/") or mcp_path.startswith("/_bollydog/"):
                raise ConfigError(f"http.mcp_path: {mcp_path} is taken or reserved; choose another path like /mcp")
            self.mcp = mcp if mcp is not None else mount(self)
            routes.append(Route(mcp_path, endpoint=self.mcp))
        self._openapi, self._asyncapi = {}, b""
        app = Starlette(
            routes=routes,
            exception_handlers={HTTPException: http_exception, Exception: self._server_error},
        )
        # A path with a trailing slash is a JSON 404 naming the route, not an empty 307.
        app.router.redirect_slashes = False
        return app

    def _probe_routes(self, routes: list[Route]) -> list[Route]:
        """/livez, /readyz, /metrics (kit/health.py), unless a message route took the path."""
        from bollydog.entrypoint.kit.health import PROBE_PATHS, probe_routes

        taken = sorted({r.path for r in routes} & set(PROBE_PATHS))
        if taken:
            raise ConfigError(
                f"http: {', '.join(taken)} is a probe path; choose another alias, or set http.probes: false"
            )
        return probe_routes(self.hub)

    def openapi(self, root_path: str = "") -> dict[str, Any]:
        """The OpenAPI 3.1 document of the served routes; ``root_path``: the mount point they
        are served under (a host app's ``app.mount``), its ``servers`` URL."""
        s = self.settings
        return build_openapi(
            self.routes, title=s.title, version=s.version, auth=self.auth.enabled, root_path=root_path
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def check_names(self) -> None:
        build_routes(self.hub.registry, self.settings)

    async def on_start(self) -> None:
        starlette = self.build_app()
        app = self._app = _Front(starlette, self._direct, self.requests, self.settings.retry_after)
        s = self.settings
        # uvicorn's own bound on its wait for connections: past the hub's grace period and
        # compensation, the hub has cut every request (abort_inflight); this only bounds a
        # stuck client.
        self.site.shutdown_timeout = (
            s.shutdown_timeout if s.shutdown_timeout is not None
            else self.hub.shutdown_grace + self.hub.compensation_grace + 1.0
        )
        if self.mcp is not None:
            await self.mcp.start()
        try:
            await self.site.start(app)
        except BaseException:
            if self.mcp is not None:
                await self.mcp.stop(0)
            raise
        self.requests.open()
        log.info("HTTP entrypoint on %s (%d routes)", self.url, len(self.routes))

    def registry_changed(self) -> None:
        """A hot reload swapped the registry: serve its routes from the next request on (open
        connections stay open; a request already running finishes on the old route)."""
        if self._app is None:
            return
        mcp = self.mcp
        self._app.serve(self.build_app(mcp=mcp), self._direct)
        if mcp is not None:
            from bollydog.entrypoint.mcp.http import tool_table

            mcp.tools.replace_tools(tool_table(self, mcp.tools.allowed))

    def abort_inflight(self, *, forced: bool = False) -> None:
        """The hub's grace period is over: answer the requests still running 503 now."""
        self.requests.cut()
        if self.mcp is not None:
            self.mcp.tools.abort()
        if forced:
            self.site.force_exit()  # stop waiting for connections to close

    def stop_accepting(self) -> None:
        """Stopping starts here (the hub calls it before it refuses work): no new connection,
        open ones end after their current response. Under ``--reload`` the process taking
        over gets the requests from now on."""
        self.site.stop_accepting()

    def settling(self) -> bool:
        return self.site.settling()

    async def on_stop(self) -> None:
        self.site.stop_accepting()
        self.requests.close()
        if self.mcp is not None:  # first: it ends the MCP streams uvicorn would wait for
            timeout = self.settings.shutdown_timeout
            await self.mcp.stop(timeout if timeout is not None else self.hub.shutdown_grace)
        await self.site.stop()

    # -- built-in routes ------------------------------------------------------------------------

    async def _asyncapi_endpoint(self, request: Request) -> Response:
        if not self._asyncapi:
            s = self.settings
            self._asyncapi = bytes(json_response(build_asyncapi(self.hub, title=s.title, version=s.version)).body)
        return Response(self._asyncapi, 200, media_type=JSON)

    async def _openapi_endpoint(self, request: Request) -> Response:
        root_path: str = request.scope.get("root_path", "")
        document = self._openapi.get(root_path)
        if document is None:
            document = self._openapi[root_path] = bytes(json_response(self.openapi(root_path)).body)
        return Response(document, 200, media_type=JSON)

    async def _outcome(self, request: Request) -> Response:
        try:
            session = self.auth.session(request.headers)
        except Exception as exc:
            return error_response(exc)
        message = self.outcomes.get(request.path_params["iid"])
        # With auth on, an outcome is visible only to the user who sent the message.
        if message is None or (self.auth.enabled and message.created_by != session.username):
            return json_response(
                {"error": "NotFound", "message": "unknown message id (or no longer kept)"}, 404
            )
        return json_response(describe_outcome(message, debug=self.settings.debug))

    async def _reload_status(self, request: Request) -> Response:
        """What the last hot reload did; ``{"reload": false}`` when the service runs without it."""
        report = self.hub.reload_report if self.hub else None
        return json_response({"reload": False} if report is None else {"reload": True, **report})

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        return error_response(exc, debug=self.settings.debug, context=f"{request.method} {request.url.path}")

"""The ASGI app of a hub's entrypoints for a host application to mount (:class:`BollydogApp`),
and :class:`HubContext`, the host middleware that makes ``bollydog.globals.hub`` work in the
host's own endpoints. :func:`bollydog.asgi.asgi_app` builds them from a config or a hub.

The HTTP, WebSocket and MCP entrypoints are the same services as under ``bollydog service``
(their routes, auth, admission and drain), but the host's server serves them: their
:class:`~bollydog.entrypoint.kit.site.Site` becomes a :class:`~bollydog.entrypoint.kit.site.HostedSite`,
so nothing binds a port, runs a second uvicorn or handles a signal. HTTP requests go to the MCP
service when their path is its ``path``, else to the HTTP service; WebSocket connections go to
the WebSocket service.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from bollydog.context import current_hub
from bollydog.entrypoint.kit.site import HostedSite, Site
from bollydog.errors import ConfigError
from bollydog.types import Entrypoint, HubT

__all__ = ["BollydogApp", "HubContext", "is_mcp_service"]


class BollydogApp:
    """The ASGI app of a hub's entrypoints, served by a host application (see the module
    documentation). Call it as an ASGI app; :meth:`lifespan` starts and stops the hub."""

    def __init__(self, hub: HubT, entrypoints: Iterable[Entrypoint]) -> None:
        self.hub = hub
        self.http: HostedSite | None = None
        self.websocket: HostedSite | None = None
        #: ``(path, site)`` of MCP services: their path goes to them, not to the HTTP service.
        self.mcp: list[tuple[str, HostedSite]] = []
        for entrypoint in entrypoints:
            self._host(entrypoint)
        from starlette.routing import Router

        # Only for a lifespan scope sent to this app itself (served without a host: uvicorn
        # module:bolly); a host application calls lifespan() from its own.
        self._router = Router(lifespan=self.lifespan)

    def _host(self, entrypoint: Entrypoint) -> None:
        from bollydog.entrypoint.http.app import HttpService
        from bollydog.entrypoint.websocket.app import SocketService

        site = getattr(entrypoint, "site", None)
        if not isinstance(site, Site):
            return  # serves nothing over a socket: runs with the hub as it is
        hosted = HostedSite(section=site.section)
        if isinstance(entrypoint, HttpService):
            self.http = _only(self.http, hosted, "http")
        elif isinstance(entrypoint, SocketService):
            self.websocket = _only(self.websocket, hosted, "websocket")
        elif is_mcp_service(entrypoint):
            settings: Any = getattr(entrypoint, "settings")
            if settings.transport != "http":
                raise ConfigError(f"{site.section}: transport {settings.transport} cannot be mounted; use transport: http")
            self.mcp.append((str(settings.path), hosted))
        else:
            raise ConfigError(
                f"{site.section}: {type(entrypoint).__name__} serves its own socket and cannot be "
                "mounted; run it with bollydog service, or leave its section out: asgi_app(..., exclude=[...])"
            )
        entrypoint.site = hosted  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Start the hub (apps, transport, entrypoints) and stop it (drain) around the host's
        life: pass it as ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)`` or enter it
        in the host's own lifespan."""
        try:
            await self.hub.start()
        except BaseException:
            await self.hub.stop()  # what had started (apps, transport) stops again
            raise
        try:
            yield
        finally:
            await self.hub.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._router(scope, receive, send)
            return
        site: HostedSite | None
        if kind == "websocket":
            site = self.websocket
        else:
            site = self._for_path(_route_path(scope))
        if site is None:
            await _nothing_here(scope, receive, send)
            return
        await site(scope, receive, send)

    def _for_path(self, path: str) -> HostedSite | None:
        for prefix, site in self.mcp:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return site
        return self.http


def is_mcp_service(entrypoint: Entrypoint) -> bool:
    """True for an :class:`~bollydog.entrypoint.mcp.app.McpService` (False without the SDK)."""
    if importlib.util.find_spec("mcp") is None:
        return False  # no McpService can have been built without the SDK
    from bollydog.entrypoint.mcp.app import McpService

    return isinstance(entrypoint, McpService)


def _only(current: HostedSite | None, new: HostedSite, section: str) -> HostedSite:
    if current is not None:
        raise ConfigError(f"asgi_app: two {section} entrypoints; a mounted app serves one of each")
    return new


def _route_path(scope: Scope) -> str:
    """The path below the mount point: a host's Mount keeps ``path`` whole and puts the prefix
    in ``root_path`` (older servers and frameworks strip it from ``path`` instead)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):] or "/"
    return path


async def _nothing_here(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    from starlette.responses import JSONResponse

    await JSONResponse({"error": "NotFound", "message": "no bollydog route here"}, 404)(scope, receive, send)


class HubContext:
    """Host middleware: ``bollydog.globals.hub`` is ``hub`` in the host's own endpoints.

    ``app.add_middleware(HubContext, hub=bolly.hub)`` (FastAPI / Starlette). The hub's own
    entrypoints need none of this.
    """

    def __init__(self, app: ASGIApp, hub: HubT) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        token = current_hub.set(self.hub)
        try:
            await self.app(scope, receive, send)
        finally:
            current_hub.reset(token)

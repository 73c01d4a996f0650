"""Streamable HTTP for a :class:`~bollydog.entrypoint.mcp.server.ToolServer`: an ASGI app to
mount at a path (``/mcp``), in front of the SDK's session manager.

Every request is authenticated first, by the kit's authenticator with the same JWT rules as the
HTTP and WebSocket entrypoints (``Authorization: Bearer <token>`` or ``x-access-token``): a missing (when required)
or bad token is a 401 with a JSON body, before the SDK sees the request. The session, with the
token's subject as username, rides in the ASGI scope to the tool call. With auth on, an MCP
session also belongs to the user who opened it: another user's token gets a 404 for it.

The session manager runs in a task of its own, started and stopped with the service; stopping
refuses new calls, waits (up to the grace period) for requests in flight to be answered, cuts
the calls still running (each answers a ``-32030`` error), then ends every MCP session, which
closes the streams clients keep open, so the HTTP server can stop without waiting for them.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from bollydog.entrypoint.http.responses import error_response
from bollydog.entrypoint.kit.admission import ANSWER_TIME, InFlight
from bollydog.entrypoint.kit.auth import AuthError
from bollydog.entrypoint.mcp.server import RETRY_AFTER, UNAVAILABLE, ToolServer
from bollydog.errors import ConfigError
from bollydog.models.base import Session
from bollydog.names import MessageFilter

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.mcp.tools import ToolTable

__all__ = ["SESSION_SCOPE_KEY", "StreamableHttp", "mount", "request_session", "transport_security"]

#: Where the gate leaves the request's :class:`Session` in the ASGI scope.
SESSION_SCOPE_KEY = "bollydog.session"

#: ``headers -> Session``; raises :class:`~bollydog.entrypoint.auth.AuthError` to refuse.
Authenticator = Callable[[Mapping[str, str]], Session]

_LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def request_session(ctx: ServerRequestContext[Any, Any]) -> Session:
    """The session the gate authenticated for the HTTP request carrying this MCP request.

    A request that came through no HTTP request at all is an in-process client (a test, an
    embedding program): it acts as the user running this process, as stdio does.
    """
    scope = getattr(ctx.request, "scope", None)
    if not isinstance(scope, dict):
        return _local_user()
    session = scope.get(SESSION_SCOPE_KEY)
    return session if isinstance(session, Session) else Session.anonymous()


@functools.cache
def _local_user() -> Session:
    return Session.local_user()  # getpass costs ~25 µs: once per process


def transport_security(
    host: str, allowed_hosts: Sequence[str] = (), allowed_origins: Sequence[str] = ()
) -> TransportSecuritySettings | None:
    """DNS-rebinding protection (Host/Origin checks) as the SDK does it: on, for local names
    only, when serving a loopback address; on, for what is listed, when hosts are listed."""
    if allowed_hosts:
        return TransportSecuritySettings(
            allowed_hosts=list(allowed_hosts), allowed_origins=list(allowed_origins)
        )
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return TransportSecuritySettings(
            allowed_hosts=_LOCAL_HOSTS, allowed_origins=[*_LOCAL_ORIGINS, *allowed_origins]
        )
    return None


class StreamableHttp:
    """The ASGI app of one MCP endpoint (call it as an app) and the life of its sessions."""

    def __init__(
        self,
        tools: ToolServer,
        authenticate: Authenticator,
        *,
        security: TransportSecuritySettings | None = None,
        stateless: bool = False,
        json_response: bool = False,
        session_idle_timeout: float | None = 30 * 60,
    ) -> None:
        self.tools = tools
        self.authenticate = authenticate
        self.manager = StreamableHTTPSessionManager(
            app=tools.server,
            json_response=json_response,
            stateless=stateless,
            security_settings=security,
            session_idle_timeout=None if stateless else session_idle_timeout,
        )
        #: HTTP requests being answered (GET streams excluded: they stay open until closed).
        self.requests = InFlight()
        self._closing = asyncio.Event()
        self._sessions: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.manager.handle_request(scope, receive, send)
            return
        if self._closing.is_set():  # the sessions are gone; the SDK would fail with a 500
            await _stopping(scope, receive, send)
            return
        try:
            session = self.authenticate(Headers(scope=scope))
        except AuthError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope[SESSION_SCOPE_KEY] = session
        if session.username is not None:
            # The SDK ties an MCP session to the principal that opened it.
            claims = session.data.get("claims")
            scope["user"] = AuthenticatedUser(
                AccessToken(
                    token="",
                    client_id=session.username,
                    scopes=[],
                    subject=session.username,
                    claims=dict(claims) if isinstance(claims, Mapping) else None,
                )
            )
        if scope.get("method") == "GET":  # a stream the client keeps open: not waited for
            await self.manager.handle_request(scope, receive, send)
            return
        with self.requests.track():
            await self.manager.handle_request(scope, receive, send)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the session manager; requests before this fail (the SDK needs its task group)."""
        started = asyncio.Event()

        async def run() -> None:
            # One task enters and leaves the manager's task group, as anyio requires.
            async with self.manager.run():
                started.set()
                await self._closing.wait()

        self._sessions = task = asyncio.create_task(run(), name="bollydog-mcp-sessions")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            ready.cancel()
            await task  # raises why the manager could not start

    async def stop(self, grace: float) -> None:
        """Refuse new calls, give requests in flight ``grace`` seconds, cut the calls left,
        end every session."""
        self.tools.close()
        if not await self.requests.wait_idle(grace):
            self.tools.abort()  # each call still running answers UNAVAILABLE
            await self.requests.wait_idle(ANSWER_TIME)
        self._closing.set()
        if self._sessions is not None:
            await asyncio.gather(self._sessions, return_exceptions=True)
            self._sessions = None


async def _stopping(scope: Scope, receive: Receive, send: Send) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": UNAVAILABLE, "message": "the MCP service is stopping; retry later",
                  "data": {"error": "HubNotRunningError", "retryAfter": RETRY_AFTER}},
    }
    response = JSONResponse(body, 503, headers={"retry-after": str(RETRY_AFTER)})
    await response(scope, receive, send)


def mount(service: "HttpService") -> StreamableHttp:
    """The MCP endpoint an :class:`~bollydog.entrypoint.http.app.HttpService` serves at its
    ``mcp_path``: the Commands its ``include``/``exclude`` let through, as tools, behind its
    own authentication; its GET-only routes are read-only tools. Call after its routes exist."""
    import bollydog

    hub = service.hub
    if not hub:
        raise ConfigError("HttpService has no hub: add it with hub.add_entrypoint(service)")
    s = service.settings
    allowed = MessageFilter(s.include, s.exclude)
    table = tool_table(service, allowed)
    tools = ToolServer(hub, table, allowed, request_session, name=s.title, version=str(bollydog.__version__))
    return StreamableHttp(tools, service.session_for, security=transport_security(s.host))


def tool_table(service: "HttpService", allowed: MessageFilter) -> "ToolTable":
    """The tools of ``service``'s MCP endpoint: what ``allowed`` lets through, its GET-only
    routes read-only (built at mount, and again by a hot reload)."""
    from bollydog.entrypoint.mcp.tools import build_tools

    get_only = [spec.key for spec in service.routes if set(spec.methods) <= {"GET", "HEAD"}]
    return build_tools(service.hub.registry, allowed, get_only)

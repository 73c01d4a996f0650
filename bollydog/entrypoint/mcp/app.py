"""McpService: every Command of the hub as an MCP tool, for AI agents (see ``docs/mcp.md``).

Config section (every option may also come from ``BOLLYDOG_MCP_SERVICE_<OPTION>``; a value in the
config wins over the environment, which wins over the default)::

    mcp:
      app: !module bollydog.entrypoint.mcp.app.McpService
      transport: http       # or stdio (what ``bollydog mcp`` serves by default)
      host: 127.0.0.1
      port: 8002            # 0 picks a free port; read it from ``service.port`` once started
      path: /mcp
      include: ["library.*"]        # fnmatch on domain.name; empty = every Command
      exclude: ["bollydog.*"]
      public_key: ./jwt.pub         # enables JWT (RS256) auth over HTTP

Lifecycle: starting builds the tool table from the hub's registry (a pattern naming nothing, or
two Commands with one tool name, is a :class:`ConfigError`), then serves stdio, or binds the
socket and serves uvicorn in a task, through the kit's :class:`~bollydog.entrypoint.kit.site.Site`
(no signal handlers: the CLI owns SIGINT/SIGTERM). Stopping refuses new calls, gives the ones
in flight ``shutdown_grace`` seconds, answers those still running a ``-32030`` error, ends the
MCP sessions and stops the server. Over stdio, the client closing stdin stops the hub, as
SIGTERM would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from bollydog.entrypoint.kit.auth import authenticator
from bollydog.entrypoint.kit.settings import EntrypointSettings, JwtSettings, OptionalText, TextList
from bollydog.entrypoint.kit.site import Site
from bollydog.entrypoint.mcp.server import SessionSource, ToolServer
from bollydog.entrypoint.mcp.tools import ToolTable, build_tools
from bollydog.errors import BollydogError
from bollydog.models.base import Session
from bollydog.names import MessageFilter
from bollydog.types import Entrypoint, HubT

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.http.settings import HttpSettings
    from bollydog.entrypoint.mcp.http import StreamableHttp
    from bollydog.handlers import HandlerRegistry

__all__ = ["McpService", "McpServiceError", "McpSettings", "get_only_messages"]

log = logging.getLogger("bollydog.mcp")

_READ_METHODS = frozenset({"GET", "HEAD"})


class McpServiceError(BollydogError):
    """The MCP service cannot do what was asked (used before start, no hub, ...)."""


class McpSettings(EntrypointSettings, JwtSettings):
    """Options of :class:`McpService`; environment variables ``BOLLYDOG_MCP_SERVICE_*``. The JWT
    options are the :class:`~bollydog.entrypoint.kit.settings.JwtSettings` every entrypoint
    shares."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_MCP_SERVICE_", extra="forbid")
    section: ClassVar[str] = "mcp"

    transport: Literal["http", "stdio"] = "http"
    host: str = "127.0.0.1"
    port: int = Field(8002, ge=0, le=65535)
    path: str = "/mcp"
    log_level: str = "info"
    name: str = Field("bollydog", min_length=1, description="The server name clients show.")
    instructions: OptionalText = Field(None, description="Told to the model when it connects.")
    include: TextList = Field(default_factory=list)
    exclude: TextList = Field(default_factory=list)
    stateless: bool = Field(False, description="HTTP: no MCP sessions (any process can answer).")
    json_response: bool = Field(False, description="HTTP: JSON answers instead of SSE (no progress).")
    allowed_hosts: TextList = Field(default_factory=list)
    allowed_origins: TextList = Field(default_factory=list)
    shutdown_grace: float | None = Field(None, ge=0, description="Default: the hub's shutdown_grace.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return value if value.startswith("/") else f"/{value}"


def get_only_messages(registry: "HandlerRegistry", http: Iterable["HttpSettings"]) -> set[str]:
    """Canonical names of the Commands the ``http`` sections serve by GET only (read-only tools)."""
    from bollydog.entrypoint.http.routes import build_routes

    return {
        spec.key for settings in http for spec in build_routes(registry, settings)
        if set(spec.methods) <= _READ_METHODS
    }


class McpService(Entrypoint):
    """Serves every Command of the hub as an MCP tool, over stdio or streamable HTTP.

    Options are the keys of :class:`McpSettings`. ``http_settings`` are HTTP sections this
    process does not serve whose GET-only routes still mark tools read-only (``bollydog mcp``
    passes the config's); the HTTP services of the same hub count without it.
    """

    options_model = McpSettings

    def __init__(
        self, *, hub: HubT | None = None, http_settings: Sequence["HttpSettings"] = (), **options: Any
    ) -> None:
        super().__init__(hub=hub, **options)
        self.settings = settings = McpSettings.from_options(options)
        self.filter = MessageFilter(settings.include, settings.exclude)
        self.http_settings = list(http_settings)
        #: The session of each HTTP request, from its JWT when ``public_key`` is set.
        self.auth = authenticator(settings)
        self.site = Site(
            settings.host, settings.port, section="mcp", env="BOLLYDOG_MCP_SERVICE_PORT",
            log_level=settings.log_level,
        )
        #: Set when the stdio client closed its end (the hub is then stopped).
        self.client_closed = asyncio.Event()
        self._tools: ToolServer | None = None
        self._serving: _Serving = _NotServing()
        self._hub_stop: asyncio.Task[None] | None = None  # the stop a leaving stdio client started

    # -- properties ------------------------------------------------------------------------------

    @property
    def tools(self) -> ToolServer:
        """The MCP server (``tools.server`` for an in-memory ``mcp.Client``); after start."""
        if self._tools is None:
            raise McpServiceError("the MCP service has no tools before it starts: start its hub first")
        return self._tools

    @property
    def port(self) -> int:
        """The HTTP port: the configured one until started, then the one bound (port 0)."""
        return self.site.port

    @property
    def url(self) -> str:
        """``http://host:port/mcp`` (streamable HTTP), or ``stdio``."""
        if self.settings.transport == "stdio":
            return "stdio"
        return self.site.url("http", self.settings.path)

    # -- lifecycle -------------------------------------------------------------------------------

    def check_names(self) -> None:
        registry = self.hub.registry
        self.filter.check(registry.names(), "mcp", registry.unloaded_domains())

    async def on_start(self) -> None:
        hub = self.hub
        if not hub:
            raise McpServiceError("McpService has no hub: add it with hub.add_entrypoint(service)")
        registry = hub.registry
        self.filter.check(registry.names(), "mcp", registry.unloaded_domains())
        table = build_tools(registry, self.filter, get_only_messages(registry, self._http_sections(hub)))
        if self.settings.transport == "stdio":
            local = Session.local_user()  # stdio: the user who launched this process
            self._tools = tools = self._tool_server(hub, table, lambda ctx: local)
            task = asyncio.create_task(self._serve_stdio(tools), name="bollydog-mcp-stdio")
            self._serving = _StdioServing(tools, task)
            log.info("MCP service on stdio (%d tools)", len(table))
            return
        from bollydog.entrypoint.mcp.http import request_session

        self._tools = tools = self._tool_server(hub, table, request_session)
        self._serving = await self._serve_http(tools)
        log.info("MCP service on %s (%d tools)", self.url, len(table))

    def registry_changed(self) -> None:
        """A hot reload swapped the registry: list its tools (clients get ``tools/list_changed``)."""
        hub = self.hub
        if self._tools is None or not hub:
            return
        registry = hub.registry
        self._tools.replace_tools(build_tools(registry, self.filter, get_only_messages(registry, self._http_sections(hub))))

    async def on_stop(self) -> None:
        serving, self._serving = self._serving, _NotServing()
        await serving.stop(self._grace())

    def abort_inflight(self, *, forced: bool = False) -> None:
        """The hub's grace period is over: every call still running answers ``-32030`` now."""
        self._serving.abort(forced)

    async def wait_closed(self) -> None:
        """Wait for the hub stop a stdio client's leaving started, if it did."""
        if self._hub_stop is not None:
            await self._hub_stop

    async def _serve_http(self, tools: ToolServer) -> "_HttpServing":
        from starlette.applications import Starlette
        from starlette.routing import Route

        from bollydog.entrypoint.mcp.http import StreamableHttp, transport_security

        s = self.settings
        http = StreamableHttp(
            tools,
            self.auth.session,
            security=transport_security(s.host, s.allowed_hosts, s.allowed_origins),
            stateless=s.stateless,
            json_response=s.json_response,
        )
        self.site.shutdown_timeout = self._grace()
        await http.start()
        try:
            await self.site.start(Starlette(routes=[Route(s.path, endpoint=http)]))
        except BaseException:
            await http.stop(0)
            raise
        return _HttpServing(http, self.site)

    def _grace(self) -> float:
        if self.settings.shutdown_grace is not None:
            return self.settings.shutdown_grace
        return self.hub.shutdown_grace

    def _http_sections(self, hub: HubT) -> list["HttpSettings"]:
        from bollydog.entrypoint.http.app import HttpService

        served = [e.settings for e in hub.entrypoints if isinstance(e, HttpService)]
        return [*served, *self.http_settings]

    def _tool_server(self, hub: HubT, table: ToolTable, session_of: SessionSource) -> ToolServer:
        import bollydog

        return ToolServer(
            hub, table, self.filter, session_of,
            name=self.settings.name, version=str(bollydog.__version__), instructions=self.settings.instructions,
        )

    async def _serve_stdio(self, tools: ToolServer) -> None:
        from bollydog.entrypoint.mcp.stdio import serve_stdio

        await serve_stdio(tools.server)
        if tools.accepting and self.hub:  # the client left, we were not stopping
            log.info("MCP client closed stdin: stopping")
            self.client_closed.set()
            self._hub_stop = asyncio.create_task(self.hub.stop(), name="bollydog-mcp-client-closed")


# -- what serves, between start and stop ------------------------------------------------------------


class _Serving(Protocol):
    async def stop(self, grace: float) -> None:
        """Refuse new calls, give the running ones ``grace`` seconds, cut the rest, stop serving."""

    def abort(self, forced: bool) -> None:
        """Cut the calls still running now; ``forced``: stop waiting for clients too."""


class _NotServing:
    """Before start and after stop: nothing to stop."""

    async def stop(self, grace: float) -> None:
        return None

    def abort(self, forced: bool) -> None:
        return None


class _HttpServing:
    def __init__(self, http: "StreamableHttp", site: Site) -> None:
        self.http, self.site = http, site

    async def stop(self, grace: float) -> None:
        await self.http.stop(grace)  # first: it ends the streams the HTTP server would wait for
        await self.site.stop()

    def abort(self, forced: bool) -> None:
        self.http.tools.abort()
        if forced:
            self.site.force_exit()


class _StdioServing:
    def __init__(self, tools: ToolServer, task: asyncio.Task[None]) -> None:
        self.tools, self.task = tools, task

    async def stop(self, grace: float) -> None:
        await self.tools.drain(grace)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def abort(self, forced: bool) -> None:
        self.tools.abort()

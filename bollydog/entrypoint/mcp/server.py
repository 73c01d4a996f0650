"""The MCP server of a hub: ``tools/list`` from the tool table, ``tools/call`` through the hub.

Built on the SDK's low-level :class:`mcp.server.Server`, transport-neutral: the same object is
served over stdio, streamable HTTP or an in-memory client (tests: ``Client(tools.server)``).

A call is handled like an untrusted HTTP request: the session is set (the transport says whose),
the trace joins the caller's (``traceparent`` in the request's ``_meta``), the arguments go
through :meth:`~bollydog.models.base.BaseMessage.from_input`, and the message enters the hub by
the kit's admission (:mod:`bollydog.entrypoint.kit.admission`: the queue bound and the
concurrency limit apply, as for HTTP and WebSocket). Partial results of a streaming handler are
sent as progress notifications, in order, before the result.

Outcomes:

* success: the result as structured content and as JSON text; ``_meta`` carries
  ``bollydog/message_id``, ``bollydog/trace_id`` and ``bollydog/traceparent``;
* invalid arguments, a failing handler, a timeout: a tool result with ``isError: true`` whose
  JSON says ``error`` (type), ``message`` and, for bad arguments, ``errors`` (one per field),
  so the model can correct itself;
* unknown tool: JSON-RPC error ``-32602``; queue full, hub stopping, nobody serving the
  Command, a call cut by the shutdown: JSON-RPC error :data:`UNAVAILABLE` with
  ``data.retryAfter``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from opentelemetry import trace

from bollydog.context import current_session, format_traceparent, parse_traceparent, remote_parent
from bollydog.entrypoint.kit.admission import InFlight, retry_after, run, stream
from bollydog.encoding import dumps
from bollydog.entrypoint.mcp.tools import RESULT_KEY, ToolSpec, ToolTable
from bollydog.errors import (
    BollydogError,
    HubNotRunningError,
    InvalidMessageError,
    UnknownMessageError,
    describe,
)
from bollydog.models.base import RESERVED_FIELDS, BaseMessage, Session
from bollydog.names import MessageFilter, suggest
from bollydog.types import HubT

__all__ = ["UNAVAILABLE", "SessionSource", "ToolServer"]

log = logging.getLogger("bollydog.mcp")

#: JSON-RPC error code (implementation-defined range) of a call the hub cannot take now.
UNAVAILABLE = -32030
#: Seconds a client should wait before retrying an :data:`UNAVAILABLE` call.
RETRY_AFTER = 1

#: Whose call this is, from the request context (the transport knows: a token, the OS user).
SessionSource = Callable[[ServerRequestContext[Any, Any]], Session]


class ToolServer:
    """Every tool of ``tools`` served from ``hub`` (see the module documentation)."""

    def __init__(
        self,
        hub: HubT,
        tools: ToolTable,
        allowed: MessageFilter,
        session_of: SessionSource,
        *,
        name: str = "bollydog",
        version: str = "",
        instructions: str | None = None,
    ) -> None:
        self.hub = hub
        self.tools = tools
        self.allowed = allowed
        self.session_of = session_of
        #: The calls being answered: what stopping waits for and, past the grace, cuts.
        self.calls = InFlight()
        self.calls.open()
        self.server: Server[Any] = Server(
            name,
            version=version,
            instructions=instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # The 2026 HTTP transport checks Mcp-Param-* headers against the tool's schema;
            # without this it would run tools/list for every call to find it.
            get_tool_input_schema=lambda name: self.tools.input_schema(name),
        )
        #: Connections of clients that listed tools: told ``tools/list_changed`` by a hot
        #: reload. Weak: a client that left is forgotten.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._notices: set[asyncio.Task[None]] = set()

    @property
    def accepting(self) -> bool:
        """False once stopping: new calls get an UNAVAILABLE error, running ones finish."""
        return self.calls.accepting

    def close(self) -> None:
        """Stopping: refuse new calls."""
        self.calls.close()

    def abort(self) -> None:
        """The grace period is over: every call still running answers UNAVAILABLE now."""
        self.calls.cut()

    def replace_tools(self, tools: ToolTable) -> None:
        """Serve ``tools`` from now on (a hot reload) and tell the known sessions
        ``notifications/tools/list_changed``."""
        self.tools = tools
        for connection in list(self._connections):
            task = asyncio.ensure_future(self._notify_changed(connection))
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    @staticmethod
    async def _notify_changed(connection: Any) -> None:
        try:
            await connection.send_tool_list_changed()
        except Exception as exc:  # noqa: BLE001 - a session that went away: nothing to tell
            log.debug("tools/list_changed not sent: %s: %s", type(exc).__name__, exc)

    async def drain(self, grace: float) -> None:
        """Refuse new calls, give the running ones ``grace`` seconds, then cut the rest."""
        await self.calls.drain(grace)

    # -- handlers of the SDK ---------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        # The SDK builds a ServerSession per request; the client's connection outlives it, and
        # the session names it only privately (the SDK has no public way to reach it).
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None:
            self._connections.add(connection)
        return types.ListToolsResult(tools=self.tools.listing)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"unknown tool '{params.name}' (tools/list gives the tools of this server)"
                f"{suggest(params.name, self.tools.by_name)}",
            )
        if not self.calls.accepting:
            raise unavailable(HubNotRunningError("the MCP service is stopping; retry later"))
        with self.calls.track():
            # Set before the message exists: it records who created it, and admission hands
            # this context (the session) to every handler the call leads to.
            session_token = current_session.set(self.session_of(ctx))
            try:
                return await self._call(ctx, spec, params.arguments or {})
            finally:
                current_session.reset(session_token)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], spec: ToolSpec, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        parent_token = remote_parent.set(_parent(ctx))
        try:
            message = self._message(spec, arguments)
        except InvalidMessageError as exc:
            return _tool_error(exc, None)
        finally:
            remote_parent.reset(parent_token)
        try:
            result = await self._run(ctx, spec, message)
        except Exception as exc:
            refused = protocol_error(exc)
            if refused is not None:
                raise refused from None
            return _tool_error(exc, message)
        except asyncio.CancelledError:
            if not self.calls.was_cut():
                raise
            log.warning("MCP call %s (%s) cut: still running when the service stopped", spec.name, message.iid)
            raise unavailable(
                HubNotRunningError("the MCP service stopped before this call completed; retry later")
            ) from None
        return _success(spec, message, result)

    # -- a call ----------------------------------------------------------------------------------

    def _message(self, spec: ToolSpec, arguments: dict[str, Any]) -> BaseMessage:
        try:
            message_class = self.hub.registry.resolve(spec.key, imports=False, allowed=self.allowed)
        except UnknownMessageError as exc:  # the registry changed after start: say so plainly
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        # The delivery fields HTTP lets clients set are not in the tool's schema either.
        reserved = [
            {"field": key, "message": "reserved field, cannot be set by a client", "type": "reserved"}
            for key in arguments
            if key in RESERVED_FIELDS
        ]
        if reserved:
            raise InvalidMessageError(f"{message_class.domain}.{message_class.name}", reserved)
        return message_class.from_input(arguments)

    async def _run(self, ctx: ServerRequestContext[Any, Any], spec: ToolSpec, message: BaseMessage) -> Any:
        if not spec.streams:
            # Detached: a client cancelling its call must not cancel the message; it completes.
            return await run(self.hub, message, detached=True)
        call = await stream(self.hub, message)
        try:
            step = 0
            reporting = True
            async for partial in call.partials():
                if not reporting:
                    continue
                step += 1
                try:
                    await ctx.session.report_progress(step, None, dumps(partial).decode())
                except Exception as exc:  # noqa: BLE001 - the client went away; the result still counts
                    log.debug("progress of %s not sent: %s: %s", spec.name, type(exc).__name__, exc)
                    reporting = False
            return await call.result()
        finally:
            call.close()


def _parent(ctx: ServerRequestContext[Any, Any]) -> tuple[str, str] | None:
    """The span a call's message is a child of: the SDK's span for this request when one is
    current (it joined the caller's ``_meta.traceparent``), else that ``traceparent``."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return "%032x" % current.trace_id, "%016x" % current.span_id
    header = (ctx.meta or {}).get("traceparent")
    return parse_traceparent(header) if isinstance(header, str) else None


# -- results -------------------------------------------------------------------------------------


def _meta(message: BaseMessage | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "bollydog/message_id": message.iid,
        "bollydog/trace_id": message.trace_id,
        "bollydog/traceparent": format_traceparent(message.trace_id, message.span_id),
    }


def _success(spec: ToolSpec, message: BaseMessage, result: Any) -> types.CallToolResult:
    raw = dumps(result)  # the JSON the HTTP entrypoint would answer
    value = json.loads(raw)
    structured = value if not spec.wrapped and isinstance(value, dict) else {RESULT_KEY: value}
    return types.CallToolResult(
        content=[types.TextContent(text=raw.decode())],
        structured_content=structured,
        _meta=_meta(message),
    )


def _tool_error(exc: Exception, message: BaseMessage | None) -> types.CallToolResult:
    # The body HTTP and WebSocket answer for the same error: code, message, its fields.
    raw = dumps(describe(exc).body())
    return types.CallToolResult(
        content=[types.TextContent(text=raw.decode())],
        structured_content=json.loads(raw),
        is_error=True,
        _meta=_meta(message),
    )


def protocol_error(exc: BaseException) -> MCPError | None:
    """The JSON-RPC error for an error no retry by the model can fix, else None (a tool error):
    a temporary refusal of the service itself (queue full, stopping, nobody serves the tool)."""
    if isinstance(exc, BollydogError) and describe(exc).status == 503:
        return unavailable(exc)
    return None


def unavailable(exc: BaseException) -> MCPError:
    """The hub cannot take the call now (full, stopping, nobody serves it): retry later."""
    data = {"error": type(exc).__name__, "retryAfter": retry_after(exc, RETRY_AFTER) or RETRY_AFTER}
    return MCPError(code=UNAVAILABLE, message=str(exc), data=data)

"""One trace from the MCP client through the SDK's span to the handlers' spans."""

from __future__ import annotations

from typing import Any

from mcp import Client
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from bollydog.entrypoint.mcp.app import McpService
from bollydog.service.app import HubService
from bollydog.telemetry import TelemetryPlugin
from tests.mcp.conftest import demo_app
from tests.telemetry.conftest import clean_otel_environment, global_providers, hex_span, hex_trace  # noqa: F401

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def traced_call(install_global: bool, meta: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    hub = HubService(apps=[demo_app()])
    plugin = TelemetryPlugin(traces_exporter="memory", install_global=install_global).install(hub)
    service = hub.add_entrypoint(McpService(port=0))
    async with hub:
        async with Client(service.tools.server, mode="legacy") as client:
            if install_global:  # the agent's own span; the SDK's client puts its context in _meta
                with trace.get_tracer("agent").start_as_current_span("agent"):
                    result = await client.call_tool("tooldemo_whoami", {})
            else:
                result = await client.call_tool("tooldemo_whoami", {}, meta=meta)
    return result, list(plugin.span_exporter.get_finished_spans())


async def test_the_handler_span_joins_the_traceparent_of_the_call() -> None:
    result, spans = await traced_call(False, {"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"})
    (handler,) = [s for s in spans if s.name == "tooldemo.whoami"]
    assert hex_trace(handler.context.trace_id) == TRACE == result.meta["bollydog/trace_id"]
    assert hex_span(handler.parent.span_id) == CLIENT_SPAN
    assert hex_span(handler.context.span_id) == result.meta["bollydog/traceparent"].split("-")[2]


async def test_with_global_tracing_the_sdk_spans_sit_between_agent_and_handler(global_providers) -> None:  # noqa: F811
    result, spans = await traced_call(True)
    by_id = {s.context.span_id: s for s in spans}
    (handler,) = [s for s in spans if s.name == "tooldemo.whoami"]
    server = by_id[handler.parent.span_id]  # the SDK's server span of this tools/call
    assert server.name == "tools/call tooldemo_whoami" and server.kind == SpanKind.SERVER
    client = by_id[server.parent.span_id]  # the SDK client's span, then the agent's
    agent = by_id[client.parent.span_id]
    assert client.kind == SpanKind.CLIENT and agent.name == "agent"
    assert len({s.context.trace_id for s in (handler, server, client, agent)}) == 1
    assert result.structured_content["parent_span_id"] == hex_span(server.context.span_id)

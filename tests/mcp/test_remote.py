"""A domain run by another process, behind Redis: still a tool here, same session and trace."""

from __future__ import annotations

from mcp import Client

from bollydog.bootstrap import build
from bollydog.errors import INTERNAL_MESSAGE
from bollydog.entrypoint.mcp.app import McpService
from tests.distribute.conftest import config, process, redis_url, prefix  # noqa: F401  (fixtures)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_remote_command_is_a_tool_with_the_callers_session_and_trace(redis_url, prefix) -> None:  # noqa: F811
    async with process(redis_url, prefix, ["calc"]):  # the consumer: it runs domain calc
        front = build(config(redis_url, prefix, ["calc"]), exclude=["calc"], entrypoints=False).hub
        service = McpService(port=0, include=["calc.*"])
        front.add_entrypoint(service)
        async with front:
            assert "calc" not in front.apps  # nothing of calc runs in this process
            async with Client(service.tools.server, mode="legacy") as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert {"calc_add", "calc_whoami", "calc_fail"} <= set(tools)
                assert "calc_noted" not in tools  # an Event
                assert tools["calc_add"].input_schema["required"] == ["a", "b"]
                # Its handler is elsewhere: the result type is not known here, so it is wrapped.
                assert tools["calc_add"].output_schema["properties"] == {"result": {}}
                added = await client.call_tool("calc_add", {"a": 2, "b": 3})
                assert added.structured_content == {"result": 5}
                seen = await client.call_tool(
                    "calc_whoami", {}, meta={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
                )
                remote = seen.structured_content["result"]
                assert remote["trace_id"] == TRACE_ID == seen.meta["bollydog/trace_id"]
                assert remote["parent_span_id"] == "00f067aa0ba902b7"
                assert remote["username"] is not None and remote["username"] == remote["created_by"]
                failed = await client.call_tool("calc_fail", {"text": "boom"})
                assert failed.is_error and failed.structured_content["error"] == "ValueError"  # rebuilt as its class
                assert failed.structured_content["message"] == INTERNAL_MESSAGE  # its text stays in the logs
                invalid = await client.call_tool("calc_add", {"a": 2})  # refused before it leaves
                assert invalid.is_error and invalid.structured_content["errors"][0]["field"] == "b"

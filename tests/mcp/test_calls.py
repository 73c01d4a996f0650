"""tools/call: through the hub's admission, results as structured JSON, errors the model can read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import INVALID_PARAMS

from bollydog.entrypoint.mcp.server import UNAVAILABLE
from bollydog.errors import INTERNAL_MESSAGE
from bollydog.models.base import Session
from tests.mcp.conftest import connect, started

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


async def test_result_is_structured_and_json_text_with_ids_in_meta(service, mode) -> None:
    async with connect(service, mode) as client:
        result = await client.call_tool("tooldemo_echo", {"text": "ab", "times": 2})
    assert result.is_error is False
    assert result.structured_content == {"echoed": "abab", "length": 4}
    assert json.loads(result.content[0].text) == {"echoed": "abab", "length": 4}
    assert len(result.meta["bollydog/message_id"]) == 32
    trace_id = result.meta["bollydog/trace_id"]
    assert len(trace_id) == 32 and result.meta["bollydog/traceparent"].startswith(f"00-{trace_id}-")


async def test_a_non_object_result_is_wrapped(service, mode) -> None:
    async with connect(service, mode) as client:
        result = await client.call_tool("tooldemo_add", {"a": 2, "b": 40})
        assert result.structured_content == {"result": 42}
        assert result.content[0].text == "42"  # the text is the result itself, as HTTP answers it
        nested = await client.call_tool("tooldemo_order", {"lines": [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 3}]})
        assert nested.structured_content == {"units": 5}


async def test_invalid_arguments_are_a_tool_error_listing_each_field(service, mode) -> None:
    async with connect(service, mode) as client:
        result = await client.call_tool("tooldemo_echo", {"times": 99, "colour": "red"})
    assert result.is_error is True
    body = json.loads(result.content[0].text)
    assert body == result.structured_content
    assert body["error"] == "InvalidMessageError"
    fields = {e["field"]: e["type"] for e in body["errors"]}
    assert fields == {"text": "missing", "times": "less_than_equal", "colour": "extra_forbidden"}
    assert "bollydog/message_id" not in (result.meta or {})  # no message was made


async def test_identity_trace_and_delivery_fields_are_refused(service) -> None:
    async with connect(service) as client:
        result = await client.call_tool("tooldemo_add", {"a": 1, "b": 2, "trace_id": "0" * 32, "priority": 9})
    assert result.is_error is True
    assert {(e["field"], e["type"]) for e in result.structured_content["errors"]} == {
        ("trace_id", "reserved"), ("priority", "reserved"),
    }


async def test_handler_failure_is_a_tool_error_with_type_and_message(service, mode) -> None:
    async with connect(service, mode) as client:
        result = await client.call_tool("tooldemo_boom", {})
    assert result.is_error is True
    assert result.structured_content == {"error": "ValueError", "message": INTERNAL_MESSAGE}  # the text: in the log
    assert len(result.meta["bollydog/message_id"]) == 32  # the message was made and ran


async def test_timeout_is_a_tool_error(service) -> None:
    async with connect(service) as client:
        result = await client.call_tool("tooldemo_sleepy", {})
    assert result.is_error is True
    assert result.structured_content["error"] == "HandlerTimeoutError"
    assert "0.2" in result.structured_content["message"]


async def test_unknown_tool_is_a_protocol_error(service, mode) -> None:
    async with connect(service, mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("tooldemo_ecco", {"text": "x"})
    assert caught.value.error.code == INVALID_PARAMS
    assert caught.value.error.message.startswith(
        "unknown tool 'tooldemo_ecco' (tools/list gives the tools of this server); did you mean tooldemo_echo"
    )


async def test_partial_results_are_progress_notifications_in_order_before_the_result(service, mode) -> None:
    seen: list[tuple[float, Any]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, json.loads(message or "null")))

    async with connect(service, mode) as client:
        result = await client.call_tool("tooldemo_countdown", {"n": 3}, progress_callback=progress)
        assert seen == [(1, {"left": 3}), (2, {"left": 2}), (3, {"left": 1}), (4, "liftoff")]
        assert result.structured_content == {"result": "liftoff"}
        # Without a progress callback, the same call only gives the result.
        assert (await client.call_tool("tooldemo_countdown", {"n": 2})).structured_content == {"result": "liftoff"}
    assert len(seen) == 4


async def test_traceparent_in_meta_is_the_parent_of_the_message(service, mode) -> None:
    async with connect(service, mode) as client:
        result = await client.call_tool(
            "tooldemo_whoami", {}, meta={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"}
        )
        seen = result.structured_content
        assert seen["trace_id"] == TRACE_ID == result.meta["bollydog/trace_id"]
        assert seen["parent_span_id"] == PARENT_SPAN
        fresh = (await client.call_tool("tooldemo_whoami", {})).structured_content
        assert fresh["trace_id"] != TRACE_ID and fresh["parent_span_id"] is None


async def test_an_in_process_client_acts_as_the_local_user(service) -> None:
    async with connect(service) as client:
        seen = (await client.call_tool("tooldemo_whoami", {})).structured_content
    local = Session.local_user().username
    assert seen["username"] == local and seen["created_by"] == local


async def until(condition: Any) -> None:
    """Test helper: poll ``condition()`` until it holds (the hub gives no event to wait for)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def test_a_full_queue_is_a_protocol_error_and_the_queued_calls_complete() -> None:
    async with started(hub_options={"queue_max_size": 1, "concurrency": 1}) as (hub, service):
        calls = service.tools.calls
        async with connect(service) as client:
            pause = [asyncio.create_task(client.call_tool("tooldemo_pause", {"seconds": 0.3}))]
            await until(lambda: hub.task_count == 1)  # running
            pause.append(asyncio.create_task(client.call_tool("tooldemo_pause", {"seconds": 0})))
            await until(lambda: len(calls) == 2 and hub.queue_size == 0)  # taken, waits for a slot
            pause.append(asyncio.create_task(client.call_tool("tooldemo_pause", {"seconds": 0})))
            await until(lambda: hub.queue_size == 1)  # the queue is full
            with pytest.raises(MCPError) as caught:
                await client.call_tool("tooldemo_add", {"a": 1, "b": 1})
            assert caught.value.error.code == UNAVAILABLE
            assert caught.value.error.data == {"error": "QueueFullError", "retryAfter": 1}
            done = [(await p).structured_content for p in pause]
            assert done == [{"result": 0.3}, {"result": 0.0}, {"result": 0.0}]


async def test_stopping_refuses_new_calls_and_lets_running_ones_finish(mode) -> None:
    async with started() as (hub, service):
        async with connect(service, mode) as client:
            running = asyncio.create_task(client.call_tool("tooldemo_pause", {"seconds": 0.3}))
            await until(lambda: len(service.tools.calls) == 1)
            stopping = asyncio.create_task(hub.stop())
            await until(lambda: not service.tools.accepting)
            with pytest.raises(MCPError) as caught:
                await client.call_tool("tooldemo_add", {"a": 1, "b": 1})
            assert caught.value.error.code == UNAVAILABLE
            assert caught.value.error.data["error"] == "HubNotRunningError"
            assert (await running).structured_content == {"result": 0.3}
            await stopping

"""Spans: one per handler execution, with the message's own ids and its parent's span as parent."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from bollydog.context import remote_parent
from bollydog.errors import HandlerTimeoutError
from tests.telemetry.conftest import hex_span, hex_trace, spans_by_name, traced_hub
from tests.telemetry.traced_handlers import Boom, Checkout, Enqueue, Flaky, Nap, Reserve, Traced

REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_PARENT = "00f067aa0ba902b7"


async def test_a_span_has_the_message_ids_and_messaging_attributes():
    async with traced_hub() as (hub, plugin):
        command = Reserve(sku="sku-1")
        assert await hub.execute(command) == "sku-1"
    (span,) = plugin.span_exporter.get_finished_spans()
    assert span.name == "shop.reserve"
    assert hex_trace(span.context.trace_id) == command.trace_id
    assert hex_span(span.context.span_id) == command.span_id
    assert span.parent is None and span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes)
    assert attributes["messaging.message.id"] == command.iid
    assert attributes["messaging.destination.name"] == "shop"
    assert attributes["messaging.operation"] == "process"
    assert attributes["messaging.system"] == "bollydog"
    assert attributes["bollydog.outcome"] == "ok"
    assert attributes["bollydog.handler"] == "tests.telemetry.traced_handlers.reserve"
    assert "bollydog.retries" not in attributes


async def test_orchestration_tree_commands_batches_handoffs_and_event_handlers():
    async with traced_hub() as (hub, plugin):
        command = Checkout(order="o-1")
        assert await hub.execute(command) == {"reserved": "o-1", "charged": 3}
        assert await hub.drain(5)  # the published event's handlers run in the background
    spans = spans_by_name(plugin)
    assert sorted((name, len(group)) for name, group in spans.items()) == [
        ("shop.charge", 2), ("shop.checkout", 1), ("shop.receipt", 2), ("shop.reserve", 1), ("shop.shipped", 2),
    ]
    every = [span for group in spans.values() for span in group]
    assert {hex_trace(span.context.trace_id) for span in every} == {command.trace_id}
    assert len({span.context.span_id for span in every}) == len(every)  # no two spans share an id

    (root,) = spans["shop.checkout"]
    assert hex_span(root.context.span_id) == command.span_id and root.parent is None
    (reserve,) = spans["shop.reserve"]
    assert reserve.parent.span_id == root.context.span_id
    assert not reserve.parent.is_remote  # the parent span was current in this process
    for charge in spans["shop.charge"]:
        assert charge.parent.span_id == root.context.span_id
    charge_ids = {charge.context.span_id for charge in spans["shop.charge"]}
    assert {receipt.parent.span_id for receipt in spans["shop.receipt"]} == charge_ids  # hand-offs

    # The event: the first handler execution is the message's span, the other one its child.
    message_span, additional = sorted(spans["shop.shipped"], key=lambda s: "bollydog.span.role" in s.attributes)
    assert message_span.parent.span_id == root.context.span_id
    assert additional.parent.span_id == message_span.context.span_id
    assert additional.attributes["bollydog.span.role"] == "additional_handler"
    assert {s.attributes["bollydog.handler"].rsplit(".", 1)[1] for s in spans["shop.shipped"]} == {"notify", "audit"}
    assert {s.kind for s in spans["shop.shipped"]} == {SpanKind.CONSUMER}


async def test_queued_messages_are_children_of_the_handler_that_queued_them():
    async with traced_hub() as (hub, plugin):
        outer = Enqueue()
        queued_span_id = await hub.execute(outer)
        assert await hub.drain(5)
        top_level = await hub.put_message(Reserve(sku="top-level"))
        await top_level.state
    spans = {hex_span(span.context.span_id): span for span in plugin.span_exporter.get_finished_spans()}
    queued = spans[queued_span_id]
    assert queued.name == "shop.reserve" and hex_span(queued.parent.span_id) == outer.span_id
    assert hex_trace(queued.context.trace_id) == outer.trace_id
    top = spans[top_level.span_id]
    assert top.parent is None and hex_trace(top.context.trace_id) == top_level.trace_id


async def test_a_remote_parent_becomes_the_span_parent():
    token = remote_parent.set((REMOTE_TRACE, REMOTE_PARENT))
    try:
        command = Reserve(sku="remote")
    finally:
        remote_parent.reset(token)
    async with traced_hub() as (hub, plugin):
        await hub.execute(command)
    (span,) = plugin.span_exporter.get_finished_spans()
    assert hex_trace(span.context.trace_id) == REMOTE_TRACE
    assert hex_span(span.parent.span_id) == REMOTE_PARENT and span.parent.is_remote


async def test_a_root_message_ignores_an_unrelated_current_span():
    async with traced_hub() as (hub, plugin):
        tracer = plugin.telemetry.tracer_provider.get_tracer("outside")
        with tracer.start_as_current_span("unrelated"):
            command = Reserve(sku="x")
            await hub.execute(command)
    span = spans_by_name(plugin)["shop.reserve"][0]
    assert span.parent is None and hex_trace(span.context.trace_id) == command.trace_id


async def test_errors_are_recorded_on_the_span():
    async with traced_hub() as (hub, plugin):
        with pytest.raises(ValueError):
            await hub.execute(Boom())
    (span,) = plugin.span_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and "ValueError: boom" in span.status.description
    assert span.attributes["bollydog.outcome"] == "error"
    assert span.attributes["error.type"] == "ValueError"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"


async def test_timeouts_have_their_own_outcome():
    async with traced_hub() as (hub, plugin):
        with pytest.raises(HandlerTimeoutError):
            await hub.execute(Nap(seconds=5, expire_time=0.02))
    (span,) = plugin.span_exporter.get_finished_spans()
    assert span.attributes["bollydog.outcome"] == "timeout"
    assert span.status.status_code is StatusCode.ERROR


async def test_retries_stay_in_one_span_and_are_counted(fast_retries):
    async with traced_hub() as (hub, plugin):
        assert await hub.execute(Flaky(failures=2, delivery_count=3)) == 3
    (span,) = plugin.span_exporter.get_finished_spans()
    assert span.attributes["bollydog.outcome"] == "ok"
    assert span.attributes["bollydog.retries"] == 2
    retries = [e for e in span.events if e.name == "retry"]
    assert [e.attributes["bollydog.delivery"] for e in retries] == [1, 2]
    assert retries[0].attributes["error.type"] == "ConnectionError"


async def test_user_spans_inside_a_handler_are_children_of_the_handler_span(global_providers):
    async with traced_hub(install_global=True) as (hub, plugin):
        assert plugin.telemetry.installed_globally == ["traces", "metrics"]
        command = Traced()
        inner_id = await hub.execute(command)
    spans = spans_by_name(plugin)
    (inner,) = spans["inner"]
    assert hex_span(inner.context.span_id) == inner_id
    assert hex_span(inner.parent.span_id) == command.span_id


async def test_the_same_message_run_twice_gets_a_second_span_as_child():
    async with traced_hub() as (hub, plugin):
        command = Reserve(sku="twice")
        await hub.execute(command)
        await hub.execute(command)
    first, second = plugin.span_exporter.get_finished_spans()
    assert hex_span(first.context.span_id) == command.span_id
    assert second.parent.span_id == first.context.span_id


async def test_before_start_and_after_stop_the_layer_passes_through():
    async with traced_hub() as (hub, plugin):
        pass
    assert plugin.span_exporter.get_finished_spans() == ()
    # Stopped: a fresh hub run with the same (stopped) middleware traces nothing.
    middleware = plugin.middleware
    result = middleware(lambda m, h: asyncio.sleep(0, "passed"), Reserve(sku="x"), None)
    assert await result == "passed"

"""Log lines carry the trace and span ids of the message being handled; the OTel log bridge."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from bollydog.logging import configure_logging
from tests.telemetry.conftest import hex_span, hex_trace, spans_by_name, traced_hub
from tests.telemetry.traced_handlers import Checkout, Reserve, Traced


@pytest.fixture
def json_log_file(tmp_path):
    """configure_logging(json=True) into a file; the root logger and structlog restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    path = tmp_path / "log.jsonl"
    configure_logging("INFO", json=True, file=str(path))
    yield path
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_json_lines_carry_the_message_trace_context_without_telemetry(json_log_file):
    from bollydog.service.app import HubService
    from tests.telemetry.conftest import shop_app

    hub = HubService(apps=[shop_app()])
    async with hub:
        command = Checkout(order="o-9")
        await hub.execute(command)
    lines = [line for line in read_lines(json_log_file) if line.get("logger") == "tests.telemetry.shop"]
    assert [line["event"] for line in lines] == ["reserving o-9", "reserved"]
    for line in lines:
        assert line["trace_id"] == command.trace_id
        assert line["message"] == "shop.reserve"
        assert len(line["span_id"]) == 16 and line["span_id"] != command.span_id  # the Reserve's


async def test_json_lines_point_at_the_handler_span_with_telemetry(json_log_file, global_providers):
    async with traced_hub(install_global=True) as (hub, plugin):
        await hub.execute(Checkout(order="o-10"))
        inner_span_id = await hub.execute(Traced())
    spans = spans_by_name(plugin)
    (reserve,) = spans["shop.reserve"]
    lines = read_lines(json_log_file)
    reserving = [line for line in lines if line["event"] in ("reserving o-10", "reserved")]
    assert len(reserving) == 2
    for line in reserving:
        assert line["span_id"] == hex_span(reserve.context.span_id)
        assert line["trace_id"] == hex_trace(reserve.context.trace_id)
    (inside,) = [line for line in lines if line["event"] == "inside the user span"]
    assert inside["span_id"] == inner_span_id  # the innermost (user) span


async def test_otel_log_bridge_exports_records_with_span_context(json_log_file):
    root = logging.getLogger()
    async with traced_hub(logs_exporter="memory") as (hub, plugin):
        bridges = [h for h in root.handlers if type(h).__name__ == "OTelBridgeHandler"]
        assert len(bridges) == 1
        configure_logging("INFO", json=True)  # reconfiguring keeps the bridge
        assert bridges[0] in root.handlers
        command = Reserve(sku="bridged")
        await hub.execute(command)
        logging.getLogger("opentelemetry.sdk.test").warning("not bridged: no feedback loop")
    assert not [h for h in root.handlers if type(h).__name__ == "OTelBridgeHandler"]  # detached on stop
    records = [r.log_record for r in plugin.log_exporter.get_finished_logs()]
    bodies = {r.body: r for r in records}
    assert "reserving bridged" in bodies and "reserved" in bodies
    assert "not bridged: no feedback loop" not in bodies
    for body in ("reserving bridged", "reserved"):
        record = bodies[body]
        assert hex_trace(record.trace_id) == command.trace_id
        assert hex_span(record.span_id) == command.span_id
    assert bodies["reserved"].attributes["sku"] == "bridged"  # structlog key-values as attributes


async def test_otel_log_bridge_keeps_record_fields_that_structlog_keys_share(json_log_file):
    async with traced_hub(logs_exporter="memory") as (hub, plugin):
        log = structlog.get_logger("tests.telemetry.bridge")
        log.info("with args", args="not a format tuple")  # used to raise TypeError from emit
        log.info("with msg", msg="not the body")
        log.info("with name", name="opentelemetry.spoofed", user="bob")
    records = [r.log_record for r in plugin.log_exporter.get_finished_logs()]
    bodies = {r.body: r for r in records}
    assert {"with args", "with msg", "with name"} <= set(bodies)
    assert bodies["with name"].attributes["user"] == "bob"

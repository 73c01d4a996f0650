"""OTLP/HTTP export to a local receiver: the spans arrive with the messages' ids."""

from __future__ import annotations

import gzip
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.telemetry.conftest import traced_hub
from tests.telemetry.traced_handlers import Boom, Checkout


class Receiver(ThreadingHTTPServer):
    """A minimal OTLP/HTTP endpoint: keeps every POST body by path, answers 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: dict[str, list[bytes]] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.headers["Content-Type"] == "application/x-protobuf"
        self.server.bodies.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def decode(kind, bodies: list[bytes]):
    requests = []
    for body in bodies:
        request = kind()
        request.ParseFromString(body)
        requests.append(request)
    return requests


async def test_spans_metrics_and_logs_reach_an_otlp_http_endpoint(receiver, caplog):
    caplog.set_level(logging.INFO)  # the app's logging level decides what the bridge sees
    async with traced_hub(
        service_name="otlp-test", endpoint=receiver.endpoint,
        traces_exporter="otlp", metrics_exporter="otlp", logs_exporter="otlp",
    ) as (hub, plugin):
        command = Checkout(order="o-otlp")
        await hub.execute(command)
        with pytest.raises(ValueError):
            await hub.execute(Boom())
        assert await hub.drain(5)
    # Stopping the plugin flushed every exporter.
    assert set(receiver.bodies) == {"/v1/traces", "/v1/metrics", "/v1/logs"}

    spans = [
        (span, resource_spans.resource)
        for request in decode(ExportTraceServiceRequest, receiver.bodies["/v1/traces"])
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    names = sorted(span.name for span, _ in spans)
    assert names == sorted(
        ["shop.checkout", "shop.reserve", "shop.charge", "shop.charge", "shop.receipt", "shop.receipt",
         "shop.shipped", "shop.shipped", "shop.boom"]
    )
    (root, resource) = next((s, r) for s, r in spans if s.name == "shop.checkout")
    assert root.trace_id.hex() == command.trace_id and root.span_id.hex() == command.span_id
    assert root.parent_span_id == b""
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "otlp-test"
    for span, _ in spans:
        if span.name != "shop.boom":
            assert span.trace_id.hex() == command.trace_id
    (reserve,) = [s for s, _ in spans if s.name == "shop.reserve"]
    assert reserve.parent_span_id.hex() == command.span_id
    (boom,) = [s for s, _ in spans if s.name == "shop.boom"]
    assert boom.status.code == 2  # STATUS_CODE_ERROR
    assert {a.key: a.value.string_value for a in boom.attributes}["bollydog.outcome"] == "error"

    metric_names = {
        metric.name
        for request in decode(ExportMetricsServiceRequest, receiver.bodies["/v1/metrics"])
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
    assert {"bollydog.messages.handled", "bollydog.messages.failed", "bollydog.handler.duration"} <= metric_names

    records = [
        record
        for request in decode(ExportLogsServiceRequest, receiver.bodies["/v1/logs"])
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    (reserving,) = [r for r in records if r.body.string_value == "reserving o-otlp"]
    assert reserving.trace_id.hex() == command.trace_id
    assert reserving.span_id.hex() == reserve.span_id.hex()

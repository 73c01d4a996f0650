"""One trace across two processes over Redis: a front hub here, a `bollydog service` consumer.

The front runs domain ``orch`` (an async-generator handler) with an in-memory exporter; the
consumer process runs domain ``calc`` and exports over OTLP/HTTP to a receiver started here. The
consumer's spans must carry the front message's trace id and have the front handler's span as
their parent, with span ids equal to the sub-commands' own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.distribute.conftest import consumers_up, redis_url_or_skip
from tests.telemetry.test_otlp import Receiver, decode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def otlp_receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def write_config(path: Path, url: str, prefix: str) -> Path:
    path.write_text(
        "calc:\n"
        "  handlers: [tests.distribute.calc_handlers]\n"
        "orch:\n"
        "  handlers: [tests.distribute.orch_handlers]\n"
        "distribute:\n"
        "  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {url}\n"
        f"  prefix: {prefix}\n"
        "  block_ms: 200\n"
    )
    return path


async def test_a_trace_spans_two_processes_over_redis(otlp_receiver, tmp_path):
    from bollydog.bootstrap import build
    from bollydog.telemetry import TelemetryPlugin
    from tests.distribute.orch_handlers import Orchestrate

    url = redis_url_or_skip()
    prefix = f"bdtrace:{os.getpid()}:{time.monotonic_ns()}"
    config = write_config(tmp_path / "config.yaml", url, prefix)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOLLYDOG_LOG_LEVEL": "WARNING",
        "OTEL_SERVICE_NAME": "calc-consumer",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    log = tmp_path / "consumer.log"
    consumer = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "calc"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        await consumers_up(url, prefix, "calc", alive=lambda: consumer.poll() is None)
        front = build(config, include=["orch"], entrypoints=False).hub
        plugin = TelemetryPlugin(traces_exporter="memory", metrics_exporter="none", install_global=False)
        plugin.install(front)
        async with front:
            command = Orchestrate(a=2, b=3, expire_time=20)
            result = await front.execute(command)
        assert result["total"] == 5 and result["caught"] == "ValueError: inner"
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=20) == 0, log.read_text()

    (root,) = [s for s in plugin.span_exporter.get_finished_spans() if s.name == "orch.orchestrate"]
    assert format(root.context.trace_id, "032x") == command.trace_id
    assert format(root.context.span_id, "016x") == command.span_id

    remote = [
        span
        for request in decode(ExportTraceServiceRequest, otlp_receiver.bodies.get("/v1/traces", []))
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    by_name = {span.name: span for span in remote}
    assert {"calc.add", "calc.whoami", "calc.fail"} <= set(by_name), sorted(by_name)
    for name in ("calc.add", "calc.whoami", "calc.fail"):
        span = by_name[name]
        assert span.trace_id.hex() == command.trace_id
        assert span.parent_span_id.hex() == command.span_id  # children of the front handler
    assert by_name["calc.fail"].status.code == 2  # STATUS_CODE_ERROR

"""The Prometheus scrape: text format parsed with prometheus_client, on the HTTP service and on
a port of its own; a missing extra is an install hint."""

from __future__ import annotations

import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bollydog.entrypoint.http.app import HttpService
from bollydog.errors import ConfigError, MissingDependencyError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.telemetry import TelemetryPlugin
from tests.ops.conftest import HANDLERS, free_port
from tests.ops.ops_handlers import Add


def prometheus_hub(*, http: bool) -> tuple[HubService, TelemetryPlugin, HttpService | None]:
    hub = HubService(apps=[AppService(domain="shop", handlers=[HANDLERS])])
    plugin = TelemetryPlugin(traces_exporter="none", metrics_exporter="prometheus", install_global=False).install(hub)
    service = hub.add_entrypoint(HttpService(port=0)) if http else None
    return hub, plugin, service


def handled(text: str) -> dict[tuple[str, str], float]:
    """``(message, outcome) -> count`` of bollydog's handled-message counter in a scrape."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["bollydog_messages_handled"]
    assert family.type == "counter"
    return {
        (s.labels["message"], s.labels["outcome"]): s.value
        for s in family.samples if s.name == "bollydog_messages_handled_total"
    }


async def test_http_service_serves_the_scrape_at_metrics() -> None:
    hub, plugin, http = prometheus_hub(http=True)
    assert http is not None
    async with hub:
        assert plugin.prometheus_url is None  # the HTTP service serves it: no port of its own
        async with httpx.AsyncClient(base_url=http.url, timeout=5) as client:
            for a in range(3):
                assert (await client.post("/shop/appservice/add", json={"a": a, "b": 1})).status_code == 200
            assert (await client.post("/shop/appservice/add", json={"a": "x", "b": 1})).status_code == 422
            scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    counts = handled(scrape.text)
    assert counts[("shop.add", "ok")] == 3  # the 422 never reached the handler
    assert all(message.startswith(("shop.", "bollydog.")) for message, _ in counts)
    duration = {f.name: f for f in text_string_to_metric_families(scrape.text)}["bollydog_handler_duration_seconds"]
    assert duration.type == "histogram"
    counts_by_message = {s.labels["message"]: s.value for s in duration.samples if s.name.endswith("_count")}
    assert counts_by_message["shop.add"] == 3


async def test_without_an_http_service_the_scrape_has_a_port_of_its_own(monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    hub, plugin, _ = prometheus_hub(http=False)
    async with hub:
        assert plugin.prometheus_url == f"http://127.0.0.1:{port}/metrics"
        for a in range(2):
            await hub.execute(Add(a=a, b=a))
        async with httpx.AsyncClient(timeout=5) as client:
            scrape = await client.get(plugin.prometheus_url)
            openmetrics = await client.get(
                plugin.prometheus_url, headers={"accept": "application/openmetrics-text; version=1.0.0"}
            )
    assert handled(scrape.text)[("shop.add", "ok")] == 2
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    with pytest.raises(httpx.TransportError):  # stopped with the plugin
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


async def test_a_busy_prometheus_port_is_a_config_error_naming_the_variable(monkeypatch) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(taken.getsockname()[1]))
        hub, _, _ = prometheus_hub(http=False)
        with pytest.raises(ConfigError, match="OTEL_EXPORTER_PROMETHEUS_PORT"):
            await hub.start()
        await hub.stop()


def test_a_missing_prometheus_extra_fails_with_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'bollydog\[prometheus\]'"):
        TelemetryPlugin(metrics_exporter="prometheus")


def test_prometheus_exports_metrics_only() -> None:
    with pytest.raises(ConfigError, match="traces_exporter: prometheus exports metrics only"):
        TelemetryPlugin(traces_exporter="prometheus")

"""Fixtures of the telemetry tests: a hub with the ``shop`` handlers and in-memory exporters."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.settings import reload_settings
from bollydog.telemetry import TelemetryPlugin

HANDLERS = "tests.telemetry.traced_handlers"


def shop_app() -> AppService:
    return AppService(domain="shop", name="store", handlers=[HANDLERS])


@contextlib.asynccontextmanager
async def traced_hub(**options: Any) -> AsyncIterator[tuple[HubService, TelemetryPlugin]]:
    """A started hub with the shop app and a TelemetryPlugin exporting to memory."""
    settings = {"traces_exporter": "memory", "metrics_exporter": "memory", "install_global": False}
    settings.update(options)
    hub = HubService(apps=[shop_app()])
    plugin = TelemetryPlugin(**settings).install(hub)
    async with hub:
        yield hub, plugin


def spans_by_name(plugin: TelemetryPlugin) -> dict[str, list[Any]]:
    spans: dict[str, list[Any]] = {}
    for span in plugin.span_exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def metric_points(plugin: TelemetryPlugin, name: str) -> list[Any]:
    data = plugin.metric_reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def hex_span(span_id: int) -> str:
    return "%016x" % span_id


def hex_trace(trace_id: int) -> str:
    return "%032x" % trace_id


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("BOLLYDOG_RETRY_BACKOFF", "0.001")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch):
    """The developer's own OTEL_* variables must not change what these tests see."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def global_providers():
    """Let a test install the process-wide providers, then forget them (as OTel's own tests do)."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.util._once import Once

    def reset() -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        metrics._internal._METER_PROVIDER_SET_ONCE = Once()
        metrics._internal._METER_PROVIDER = None
        _logs._internal._LOGGER_PROVIDER_SET_ONCE = Once()
        _logs._internal._LOGGER_PROVIDER = None

    reset()
    yield
    reset()

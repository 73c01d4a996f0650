"""TelemetryPlugin: the hub plugin that turns tracing, metrics and the OTel log bridge on.

Config section (every key optional)::

    telemetry:
      app: !module bollydog.telemetry.TelemetryPlugin
      service_name: shop                     # else OTEL_SERVICE_NAME, else "bollydog"
      traces_exporter: otlp                  # console | otlp | memory | none (else OTEL_TRACES_EXPORTER)
      metrics_exporter: otlp                 # or prometheus: a scrape endpoint (else OTEL_METRICS_EXPORTER)
      logs_exporter: none                    # (else OTEL_LOGS_EXPORTER)
      endpoint: http://127.0.0.1:4318        # OTLP/HTTP base URL (else OTEL_EXPORTER_OTLP_ENDPOINT)

Without such a section, the standard ``OTEL_*`` variables alone create one (see
:func:`plugin_from_environment`). Lifecycle: the SDK is configured when the plugin starts (with
the hub) and flushed and shut down when it stops; before and after, its middleware passes
messages through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bollydog.types import HubPlugin, HubT, MetricsScrape, _NoHub
from bollydog.context import current_hub
from bollydog.errors import ConfigError
from bollydog.hub.hooks import DeadLetter
from bollydog.telemetry import metrics as _metrics
from bollydog.telemetry.setup import (
    Telemetry,
    configure_telemetry,
    exporter_names,
    require_sdk,
    wants_telemetry,
)
from bollydog.telemetry.prometheus import PrometheusScrape, ScrapeServer, require_prometheus
from bollydog.telemetry.tracing import TelemetryMiddleware

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bollydog.handlers import Handler
    from bollydog.hub.middleware import Middleware
    from bollydog.models.base import BaseMessage

log = logging.getLogger("bollydog.telemetry")


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The plugin's options besides its exporters (see :func:`configure_telemetry`)."""

    service_name: str | None
    endpoint: str | None
    headers: Mapping[str, str] | None
    metric_export_interval: float | None
    install_global: bool


class TelemetryPlugin(HubPlugin):
    """OpenTelemetry for a hub: a span and metrics per handler execution, logs bridged.

    ``install_global`` (default True) also makes the providers the process-wide OpenTelemetry
    ones when none is set yet, so that ``opentelemetry.trace.get_tracer(...)`` in user code
    exports through them too. ``hub`` defaults to the hub that starts the plugin.
    """

    def __init__(
        self,
        service_name: str | None = None,
        traces_exporter: Any = None,
        metrics_exporter: Any = None,
        logs_exporter: Any = None,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        metric_export_interval: float | None = None,
        install_global: bool = True,
        hub: HubT | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(
                f"telemetry: unknown option(s) {', '.join(sorted(options))}; known: service_name, "
                "traces_exporter, metrics_exporter, logs_exporter, endpoint, headers, "
                "metric_export_interval, install_global"
            )
        super().__init__()
        self.settings = TelemetrySettings(service_name, endpoint, headers, metric_export_interval, install_global)
        # Resolved now, so that a bad exporter name or a missing SDK fails at start-up.
        self.signals = {
            "traces": exporter_names("traces", traces_exporter, endpoint=endpoint),
            "metrics": exporter_names("metrics", metrics_exporter, endpoint=endpoint),
            "logs": exporter_names("logs", logs_exporter, endpoint=endpoint),
        }
        if any(self.signals.values()):
            require_sdk()
        #: The hub it observes: given, set by :meth:`install`, or found when the hub starts it.
        self.hub: HubT = hub if hub is not None else _NoHub(
            "this telemetry plugin", "install it with plugin.install(hub), or let a hub start it"
        )
        self.telemetry: Telemetry | None = None
        self._middleware = TelemetryMiddleware()
        self._log_handler: logging.Handler | None = None
        self._instruments: _metrics.Instruments | None = None
        self._listening = False
        self._scrape_server: ScrapeServer | None = None
        if "prometheus" in self.signals["metrics"]:
            require_prometheus()  # an install hint now, not at start

    # -- the hub plugin protocol ---------------------------------------------------------------

    @property
    def middleware(self) -> "Middleware | None":
        """The dispatch layer, or None when no traces or metrics are exported (zero cost)."""
        if not (self.signals["traces"] or self.signals["metrics"]):
            return None
        return self._middleware

    def install(self, hub: HubT) -> "TelemetryPlugin":
        """Add this plugin to ``hub`` by hand (what bootstrap does for a config section)."""
        self.hub = hub
        if self.middleware is not None:
            hub.add_middleware(self.middleware)
        hub.add_dependency(self)
        return self

    async def on_start(self) -> None:
        if not self.hub:
            starting = current_hub.get()  # the starting hub set it; its children start after
            if starting is not None:
                self.hub = starting
        settings = self.settings
        telemetry = self.telemetry = configure_telemetry(
            settings.service_name,
            traces_exporter=self.signals["traces"],
            metrics_exporter=self.signals["metrics"],
            logs_exporter=self.signals["logs"],
            endpoint=settings.endpoint,
            headers=settings.headers,
            metric_export_interval=settings.metric_export_interval,
            install_global=settings.install_global,
        )
        tracer = None
        if telemetry.tracer_provider is not None:
            tracer = telemetry.tracer_provider.get_tracer("bollydog", _version())
        instruments = None
        if telemetry.meter_provider is not None:
            instruments = _metrics.Instruments(telemetry.meter_provider.get_meter(_metrics.METER_NAME, _version()))
            if self.hub:
                instruments.observe(self.hub)
        self._middleware.bind(tracer, instruments)
        self._instruments = instruments
        if (tracer is not None or instruments is not None) and self.hub:
            self.hub.hooks.retrying.connect(self._on_retry)
            self.hub.hooks.dead_lettered.connect(self._on_dead_letter)
            self._listening = True
        if telemetry.logger_provider is not None:
            from bollydog.logging import attach_otel_handler

            self._log_handler = attach_otel_handler(telemetry.logger_provider)
        if telemetry.prometheus_registry is not None:
            self._serve_scrape(telemetry.prometheus_registry)

    def _serve_scrape(self, registry: Any) -> None:
        """``/metrics`` on the hub's HTTP entrypoint, else on a port of its own."""
        served = False
        if self.hub:
            self.hub.metrics_scrape = PrometheusScrape(registry)
            served = any(e.serves_metrics for e in self.hub.entrypoints)
        if not served:
            server = ScrapeServer(registry)
            server.start()
            self._scrape_server = server

    async def on_stop(self) -> None:
        self._middleware.bind(None, None)
        if self.hub and self.hub.metrics_scrape:
            self.hub.metrics_scrape = MetricsScrape()
        server, self._scrape_server = self._scrape_server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
        if self._listening:
            self.hub.hooks.retrying.disconnect(self._on_retry)
            self.hub.hooks.dead_lettered.disconnect(self._on_dead_letter)
            self._listening = False
        self._instruments = None
        if self._log_handler is not None:
            from bollydog.logging import detach_otel_handler

            detach_otel_handler(self._log_handler)
            self._log_handler = None
        telemetry = self.telemetry  # kept after stop: in-memory exporters stay readable
        if telemetry is not None:
            # Exporters flush over the network: off the event loop.
            await asyncio.to_thread(telemetry.shutdown)

    def _on_retry(
        self, message: "BaseMessage", handler: "Handler", attempt: int, error: BaseException, delay: float
    ) -> None:
        """``hub.hooks.retrying``: count the retry and mark it on the handler's span."""
        _metrics.record_retry(self._instruments, message, attempt, error, delay)

    def _on_dead_letter(self, dead_letter: DeadLetter) -> None:
        """``hub.hooks.dead_lettered``: count it and mark it on the current span."""
        _metrics.record_dead_letter(self._instruments, dead_letter)

    @property
    def prometheus_url(self) -> str | None:
        """Where the plugin serves ``/metrics`` itself (no entrypoint of the hub does), once
        started; None otherwise."""
        return self._scrape_server.url if self._scrape_server is not None else None

    # -- in-memory exporters (``memory``), for tests -------------------------------------------

    @property
    def span_exporter(self) -> InMemorySpanExporter | None:
        """The ``InMemorySpanExporter`` (traces_exporter ``memory``), once started."""
        return self.telemetry.span_exporter if self.telemetry else None

    @property
    def metric_reader(self) -> InMemoryMetricReader | None:
        """The ``InMemoryMetricReader`` (metrics_exporter ``memory``), once started."""
        return self.telemetry.metric_reader if self.telemetry else None

    @property
    def log_exporter(self) -> InMemoryLogRecordExporter | None:
        """The ``InMemoryLogRecordExporter`` (logs_exporter ``memory``), once started."""
        return self.telemetry.log_exporter if self.telemetry else None


def plugin_from_environment(environ: Mapping[str, str] | None = None) -> TelemetryPlugin | None:
    """A :class:`TelemetryPlugin` when the standard ``OTEL_*`` variables ask for an exporter.

    ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` or ``OTEL_LOGS_EXPORTER`` naming
    ``console`` or ``otlp``, or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` (then every signal whose
    exporter variable is unset goes to OTLP, as the OpenTelemetry defaults say). None otherwise,
    and when ``OTEL_SDK_DISABLED=true``. Raises :class:`~bollydog.errors.MissingDependencyError`
    when telemetry is asked for but ``opentelemetry-sdk`` is not installed.
    """
    env = os.environ if environ is None else environ
    if not wants_telemetry(env):
        return None
    if environ is None:
        return TelemetryPlugin()

    def exporters(signal: str) -> list[Any] | str:
        return exporter_names(signal, None, environ=env) or "none"

    return TelemetryPlugin(
        traces_exporter=exporters("traces"), metrics_exporter=exporters("metrics"), logs_exporter=exporters("logs")
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("bollydog")
    except Exception:  # not installed (running from a checkout)
        return "0"

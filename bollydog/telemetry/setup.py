"""Configuring the OpenTelemetry SDK: providers, exporters, resource — and shutting them down.

Only this module (and :mod:`bollydog.telemetry.ids`) imports ``opentelemetry.sdk``, and only
when :func:`configure_telemetry` runs, so ``import bollydog.telemetry`` needs nothing but
``opentelemetry-api``.

Exporter names, per signal: ``console``, ``otlp`` (OTLP over HTTP/protobuf), ``memory`` (kept
in process, for tests; read them back from :class:`Telemetry`), ``prometheus`` (metrics only: a
scrape endpoint, see :mod:`bollydog.telemetry.prometheus`), ``none``; a comma-separated list
sends to several. An option left ``None`` falls back to the standard variable
(``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``), then to ``otlp``
when an OTLP endpoint is configured, else ``none``.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bollydog.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

log = logging.getLogger("bollydog.telemetry")

EXPORTERS = ("console", "otlp", "memory", "prometheus", "none")
SIGNALS = ("traces", "metrics", "logs")


def require_sdk() -> None:
    """Raise :class:`MissingDependencyError` unless ``opentelemetry-sdk`` can be imported."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise MissingDependencyError("telemetry", "telemetry", "opentelemetry-sdk") from None


def exporter_names(
    signal: str, value: str | Sequence[str] | Any | None, *, endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Any]:
    """The exporters wanted for ``signal``: names (validated) or exporter objects given as is."""
    env = os.environ if environ is None else environ
    if value is None:
        value = env.get(f"OTEL_{signal.upper()}_EXPORTER")
        if value is None:
            has_endpoint = endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
            )
            value = "otlp" if has_endpoint else "none"
    if isinstance(value, str):
        items: list[Any] = [v.strip().lower() for v in value.split(",") if v.strip()]
    elif isinstance(value, Sequence):
        items = [v.strip().lower() if isinstance(v, str) else v for v in value]
    else:
        items = [value]  # an exporter or reader object
    for item in items:
        if isinstance(item, str) and item not in EXPORTERS:
            raise ConfigError(
                f"telemetry {signal}_exporter: unknown exporter '{item}' "
                f"(expected one of {', '.join(EXPORTERS)}, comma-separated for several)"
            )
        if item == "prometheus" and signal != "metrics":
            raise ConfigError(f"telemetry {signal}_exporter: prometheus exports metrics only")
    return [item for item in items if item != "none"]


def wants_telemetry(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard ``OTEL_*`` variables ask for any exporter."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(exporter_names(signal, None, environ=env) for signal in SIGNALS)


@dataclass
class Telemetry:
    """The configured SDK: providers, and the in-memory exporters when ``memory`` was asked for."""

    service_name: str
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    span_exporter: InMemorySpanExporter | None = None
    metric_reader: InMemoryMetricReader | None = None
    log_exporter: InMemoryLogRecordExporter | None = None
    #: The prometheus_client registry of the ``prometheus`` metrics exporter (None without it).
    prometheus_registry: Any = None
    installed_globally: list[str] = field(default_factory=list)

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and close every provider (blocking: exporters send what they hold)."""
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:  # one failing exporter must not keep the others from flushing
                    log.exception("telemetry: shutting down %s failed", type(provider).__name__)


def configure_telemetry(
    service_name: str | None = None,
    *,
    traces_exporter: Any = None,
    metrics_exporter: Any = None,
    logs_exporter: Any = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    metric_export_interval: float | None = None,
    install_global: bool = False,
    resource_attributes: Mapping[str, Any] | None = None,
) -> Telemetry:
    """Create the SDK providers for the exporters asked for; a signal with none gets no provider.

    ``endpoint`` is the OTLP/HTTP base URL (``http://collector:4318``); ``/v1/traces`` and so on
    are appended. Without it, the exporters read ``OTEL_EXPORTER_OTLP_*`` themselves.
    ``install_global`` also makes them the process-wide OpenTelemetry providers (only if none
    was set yet: OpenTelemetry allows setting them once per process).
    """
    require_sdk()
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    traces = exporter_names("traces", traces_exporter, endpoint=endpoint)
    metrics = exporter_names("metrics", metrics_exporter, endpoint=endpoint)
    logs = exporter_names("logs", logs_exporter, endpoint=endpoint)
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "bollydog"
    resource = Resource.create({**dict(resource_attributes or {}), SERVICE_NAME: name})
    telemetry = Telemetry(service_name=name)
    options = {"endpoint": endpoint, "headers": headers}
    if traces:
        _configure_traces(telemetry, traces, resource, options)
    if metrics:
        _configure_metrics(telemetry, metrics, resource, options, metric_export_interval)
    if logs:
        _configure_logs(telemetry, logs, resource, options)
    if install_global:
        _install_global(telemetry)
    return telemetry


def _otlp_options(options: Mapping[str, Any], path: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if options.get("endpoint"):
        kwargs["endpoint"] = options["endpoint"].rstrip("/") + path
    if options.get("headers"):
        kwargs["headers"] = dict(options["headers"])
    return kwargs


def _check_protocol(signal: str) -> None:
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: bollydog exports OTLP over HTTP/protobuf "
            "only; unset it or set it to http/protobuf (a collector listens on port 4318 for it)"
        )


def _otlp_import(module: str, name: str) -> Any:
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        raise MissingDependencyError("telemetry (otlp)", "telemetry", "opentelemetry-exporter-otlp-proto-http") from None


def _configure_traces(telemetry: Telemetry, names: list[Any], resource: Resource, options: Mapping[str, Any]) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bollydog.telemetry.ids import MessageIdGenerator

    provider = TracerProvider(resource=resource, id_generator=MessageIdGenerator())
    for item in names:
        if item == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        elif item == "memory":
            span_exporter = telemetry.span_exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        elif item == "otlp":
            _check_protocol("traces")
            exporter_class = _otlp_import("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter")
            provider.add_span_processor(BatchSpanProcessor(exporter_class(**_otlp_options(options, "/v1/traces"))))
        elif isinstance(item, SpanExporter):
            provider.add_span_processor(BatchSpanProcessor(item))
        else:
            raise ConfigError(f"telemetry traces_exporter: {item!r} is not a SpanExporter")
    telemetry.tracer_provider = provider


def _configure_metrics(
    telemetry: Telemetry, names: list[Any], resource: Resource, options: Mapping[str, Any], interval: float | None
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        InMemoryMetricReader,
        MetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )

    millis = interval * 1000 if interval else None  # None: the SDK's (OTEL_METRIC_EXPORT_INTERVAL)
    readers: list[MetricReader] = []
    for item in names:
        if item == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr), export_interval_millis=millis))
        elif item == "memory":
            metric_reader = telemetry.metric_reader = InMemoryMetricReader()
            readers.append(metric_reader)
        elif item == "prometheus":
            from bollydog.telemetry.prometheus import prometheus_reader

            reader, telemetry.prometheus_registry = prometheus_reader()
            readers.append(reader)
        elif item == "otlp":
            _check_protocol("metrics")
            exporter_class = _otlp_import("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter")
            readers.append(
                PeriodicExportingMetricReader(
                    exporter_class(**_otlp_options(options, "/v1/metrics")), export_interval_millis=millis
                )
            )
        elif isinstance(item, MetricReader):
            readers.append(item)
        elif isinstance(item, MetricExporter):
            readers.append(PeriodicExportingMetricReader(item, export_interval_millis=millis))
        else:
            raise ConfigError(f"telemetry metrics_exporter: {item!r} is not a MetricExporter or MetricReader")
    telemetry.meter_provider = MeterProvider(resource=resource, metric_readers=readers)


def _configure_logs(telemetry: Telemetry, names: list[Any], resource: Resource, options: Mapping[str, Any]) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        ConsoleLogRecordExporter,
        InMemoryLogRecordExporter,
        LogRecordExporter,
        SimpleLogRecordProcessor,
    )

    provider = LoggerProvider(resource=resource)
    for item in names:
        if item == "console":
            provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogRecordExporter(out=sys.stderr)))
        elif item == "memory":
            # The SDK leaves this __init__ unannotated.
            log_exporter = telemetry.log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
            provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        elif item == "otlp":
            _check_protocol("logs")
            exporter_class = _otlp_import("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter")
            provider.add_log_record_processor(BatchLogRecordProcessor(exporter_class(**_otlp_options(options, "/v1/logs"))))
        elif isinstance(item, LogRecordExporter):
            provider.add_log_record_processor(BatchLogRecordProcessor(item))
        else:
            raise ConfigError(f"telemetry logs_exporter: {item!r} is not a LogRecordExporter")
    telemetry.logger_provider = provider


def _install_global(telemetry: Telemetry) -> None:
    """Set the process-wide providers that are still unset (OpenTelemetry allows it once)."""
    from opentelemetry import _logs, metrics, trace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if telemetry.tracer_provider is not None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(telemetry.tracer_provider)
            telemetry.installed_globally.append("traces")
        if telemetry.meter_provider is not None and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
            metrics.set_meter_provider(telemetry.meter_provider)
            telemetry.installed_globally.append("metrics")
        if telemetry.logger_provider is not None and type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider":
            _logs.set_logger_provider(telemetry.logger_provider)
            telemetry.installed_globally.append("logs")

"""The Prometheus scrape of the "bollydog" meter, through the official OpenTelemetry exporter.

``metrics_exporter: prometheus`` (or ``OTEL_METRICS_EXPORTER=prometheus``) adds a
``PrometheusMetricReader`` (``opentelemetry-exporter-prometheus``, the ``prometheus`` extra)
with a registry of its own. The plugin then hands the hub a :class:`PrometheusScrape`
(``hub.metrics_scrape``): the HTTP entrypoint (and a mounted app, and the CLI's probe server)
serve it at ``/metrics``. A process with no entrypoint serving ``/metrics`` gets
:class:`ScrapeServer`, prometheus_client's own HTTP server, on ``OTEL_EXPORTER_PROMETHEUS_HOST``
/ ``OTEL_EXPORTER_PROMETHEUS_PORT`` (the standard variables, default ``localhost:9464``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from bollydog.errors import ConfigError, MissingDependencyError
from bollydog.types import MetricsScrape

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.metrics.export import MetricReader

__all__ = ["PrometheusScrape", "ScrapeServer", "prometheus_reader", "require_prometheus"]

log = logging.getLogger("bollydog.telemetry")

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9464


def require_prometheus() -> None:
    """Raise :class:`MissingDependencyError` (with the install hint) unless the exporter is there."""
    try:
        import opentelemetry.exporter.prometheus  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "telemetry (prometheus)", "prometheus", "opentelemetry-exporter-prometheus"
        ) from None


def prometheus_reader() -> tuple["MetricReader", Any]:
    """A new ``PrometheusMetricReader`` and the registry it reports to (one per plugin, so two
    hubs in one process never share series)."""
    require_prometheus()
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    try:
        return PrometheusMetricReader(registry=registry), registry
    except TypeError:  # an exporter older than its registry keyword: the process-wide registry
        from prometheus_client import REGISTRY

        return PrometheusMetricReader(), REGISTRY


class PrometheusScrape(MetricsScrape):
    """The registry's metrics in the text format the scraper asks for (OpenMetrics or 0.0.4)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def __bool__(self) -> bool:
        return True

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class ScrapeServer:
    """prometheus_client's HTTP server (a thread) for a process that serves no ``/metrics``."""

    def __init__(self, registry: Any, host: str | None = None, port: int | None = None) -> None:
        self.registry = registry
        self.host = host or os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_HOST
        text = os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT")
        try:
            self.port = port if port is not None else int(text) if text else DEFAULT_PORT
        except ValueError:
            raise ConfigError(f"OTEL_EXPORTER_PROMETHEUS_PORT={text!r}: expected a port number") from None
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(self.port, self.host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"telemetry: cannot serve Prometheus metrics on {self.host}:{self.port}: "
                f"{exc.strerror or exc}; set OTEL_EXPORTER_PROMETHEUS_PORT (0 picks a free port) "
                "or add an HTTP entrypoint, which serves /metrics"
            ) from None
        self.port = int(self._server.server_address[1])
        log.info("Prometheus metrics on %s", self.url)

    def stop(self) -> None:
        """Stop serving (blocking: call it off the event loop)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(5)

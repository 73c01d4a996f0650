"""OpenTelemetry for bollydog: a span and metrics per handler execution, trace ids in logs.

Off unless configured: no layer is added to the hub and nothing is imported from the SDK until
a ``telemetry`` config section (``app: !module bollydog.telemetry.TelemetryPlugin``) or the
standard ``OTEL_*`` variables ask for an exporter. Importing this package needs only
``opentelemetry-api``; exporting needs ``pip install 'bollydog[telemetry]'``.
See docs/telemetry.md.
"""

from bollydog.telemetry.plugin import TelemetryPlugin, plugin_from_environment
from bollydog.telemetry.setup import Telemetry, configure_telemetry
from bollydog.telemetry.tracing import TelemetryMiddleware

__all__ = [
    "Telemetry",
    "TelemetryMiddleware",
    "TelemetryPlugin",
    "configure_telemetry",
    "plugin_from_environment",
]

"""Logging set-up for processes started by the CLI (the library itself never configures logging).

Library code logs through the standard :mod:`logging` module; user code may use either that or
``structlog.get_logger()``. Both end up in one structlog formatter that adds the ``trace_id`` and
``span_id`` of the message being handled to every line (JSON lines with ``BOLLYDOG_LOG_JSON``).

When telemetry exports logs (``logs_exporter``/``OTEL_LOGS_EXPORTER``), the telemetry plugin
adds an OpenTelemetry bridge handler to the root logger (:func:`attach_otel_handler`): records
then also go to the log exporter, stamped with the current span. :func:`configure_logging` keeps
that handler when it replaces the others.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
import warnings
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry.trace import get_current_span

from bollydog.context import get_message

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.sdk._logs import LoggingHandler
    from opentelemetry.util.types import Attributes

_KEEP = "_bollydog_keep"  # marks root handlers that configure_logging must not remove


def add_trace_context(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current message's trace and span ids.

    When an OpenTelemetry span of the same trace is current (a handler span, or a span the
    handler opened itself), its span id is used: the line then points at the innermost span.
    """
    message = get_message()
    if message is not None:
        span_id = message.span_id
        current = get_current_span().get_span_context()
        if current.is_valid and "%032x" % current.trace_id == message.trace_id:
            span_id = "%016x" % current.span_id
        event_dict.setdefault("trace_id", message.trace_id)
        event_dict.setdefault("span_id", span_id)
        event_dict.setdefault("message", f"{message.domain}.{message.name}")
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = False, file: str | None = None) -> None:
    """Route stdlib logging and structlog to stderr (or ``file``), one format, trace ids added."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        # A plain traceback: structlog's default (rich, when installed) prints every frame's
        # locals, hundreds of lines per failure that may hold secrets (tokens, sessions).
        else structlog.dev.ConsoleRenderer(
            colors=False if file else sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if json else []),
            renderer,
        ],
    )
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler, *(h for h in root.handlers if getattr(h, _KEEP, False))]
    root.setLevel(level.upper())


# -- OpenTelemetry log bridge ------------------------------------------------------------------


def attach_otel_handler(logger_provider: LoggerProvider, level: int = logging.NOTSET) -> logging.Handler:
    """Send root-logger records to ``logger_provider`` (an SDK ``LoggerProvider``) as well.

    Needs ``opentelemetry-sdk``. Returns the handler, for :func:`detach_otel_handler`.
    """
    handler = _otel_handler_class()(level=level, logger_provider=logger_provider)
    setattr(handler, _KEEP, True)
    logging.getLogger().addHandler(handler)
    return handler


def detach_otel_handler(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.flush()


_PRIMITIVES = (str, bool, int, float)
#: Attributes of every LogRecord: an event key of that name must not overwrite them (``args``
#: would break formatting, ``msg`` replace the body, ``name`` defeat the recursion guard).
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@functools.cache
def _otel_handler_class() -> type[LoggingHandler]:
    from opentelemetry.sdk._logs import LoggingHandler

    class OTelBridgeHandler(LoggingHandler):
        """The SDK's LoggingHandler, made safe for structlog records and for itself.

        structlog hands the formatter an event dict as ``record.msg``: its ``event`` becomes the
        body and its plain values attributes. Records of ``opentelemetry.*`` loggers are not
        bridged, so that an exporter failing to export logs cannot feed itself.
        """

        def __init__(self, level: int = logging.NOTSET, logger_provider: LoggerProvider | None = None) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in favour of a contrib package
                super().__init__(level=level, logger_provider=logger_provider)

        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("opentelemetry"):
                return
            msg = record.msg
            if isinstance(msg, dict):
                record = copy.copy(record)
                event = dict(msg)
                record.msg, record.args = str(event.pop("event", "")), ()
                for key, value in event.items():
                    if not key.startswith("_") and key not in _RECORD_FIELDS and isinstance(value, _PRIMITIVES):
                        setattr(record, key, value)
            super().emit(record)

        @staticmethod
        def _get_attributes(record: logging.LogRecord) -> Attributes:
            attributes = LoggingHandler._get_attributes(record)
            if attributes is None:
                return None
            return {
                key: value
                for key, value in attributes.items()
                if not key.startswith("_") and isinstance(value, _PRIMITIVES)
            }

    return OTelBridgeHandler

"""Logging set-up for processes started by the CLI (the library itself never configures logging).

Library code logs through the standard :mod:`logging` module; user code may use either that or
``structlog.get_logger()``. Both end up in one structlog formatter that adds the ``trace_id`` and
``span_id`` of the message being handled to every line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from bollydog.context import get_message


def add_trace_context(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current message's trace and span ids."""
    message = get_message()
    if message is not None:
        event_dict.setdefault("trace_id", message.trace_id)
        event_dict.setdefault("span_id", message.span_id)
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
        else structlog.dev.ConsoleRenderer(colors=False if file else sys.stderr.isatty())
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
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

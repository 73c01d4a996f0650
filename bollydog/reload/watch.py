"""Watching the handler packages and the config file, and applying each change.

A burst of saves is one change (``watchfiles`` debounces it). Each change takes one of three
paths, said in the log with its reason: ``swap`` (the new code runs in this process),
``restart`` (a new process takes over, see :mod:`bollydog.reload.supervisor`) or ``failed``
(the old code keeps serving; the error, with ``file:line``, is logged and reported by
``GET /_bollydog/reload``). Every change is a ``bollydog.reload`` span and counts in the
``bollydog.reloads`` metric.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace

from bollydog.errors import ConfigError
from bollydog.reload.handoff import RESTART_REASON, restart_status, supervised
from bollydog.reload.swap import CodeSwap, ReloadError, SwapReport

__all__ = ["apply_change", "watch"]

log = logging.getLogger("bollydog.reload")
_tracer = trace.get_tracer("bollydog.reload")
_reloads = metrics.get_meter("bollydog").create_counter(
    "bollydog.reloads", unit="{reload}", description="Code changes applied, by path (swap, restart, failed)"
)

#: Saves less than STEP_MS apart are one change, grouped for DEBOUNCE_MS at most.
DEBOUNCE_MS = 300
STEP_MS = 50


def apply_change(swap: CodeSwap, changed: set[Path], on_restart: Callable[[str], None]) -> SwapReport:
    """Apply one change of the ``changed`` files (see the module documentation)."""
    with _tracer.start_as_current_span("bollydog.reload") as span:
        span.set_attribute("bollydog.reload.files", sorted(str(p) for p in changed))
        reason = swap.restart_reason(changed)
        if reason is not None:
            report = SwapReport("restart", swap.version, reason=reason)
            log.warning("reload: restart path: %s", reason)
            on_restart(reason)
        else:
            try:
                report = swap.swap(changed)
            except ReloadError as exc:
                report = SwapReport("failed", swap.version, error=str(exc), where=exc.where)
                log.error("reload failed, the previous code keeps serving: %s", exc)
            else:
                if report.modules:
                    log.info(
                        "reload: swapped in place (code version %d): %s", report.version, ", ".join(report.modules)
                    )
        span.set_attribute("bollydog.reload.path", report.path)
        span.set_attribute("bollydog.code_version", report.version)
        if report.error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, report.error))
    swap.last = report
    swap.hub.reload_report = report.as_dict()
    _reloads.add(1, {"path": report.path})
    return report


async def watch(
    swap: CodeSwap,
    on_restart: Callable[[str], None],
    *,
    debounce_ms: int = DEBOUNCE_MS,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Apply every change of the watched files until cancelled (or ``stop_event`` is set)."""
    try:
        from watchfiles import awatch
    except ImportError:
        raise ConfigError("--reload needs watchfiles: pip install 'bollydog[reload]'") from None
    config = swap.config_file
    paths = [p for p in swap.watch_paths() if p != config]
    folders = [*paths, *([config.parent] if config is not None else [])]

    def wanted(_change: Any, path: str) -> bool:
        return path.endswith(".py") or (config is not None and Path(path) == config)

    restarted_for = os.environ.get(RESTART_REASON)
    first = SwapReport("restart", swap.version, reason=restarted_for) if restarted_for else None
    swap.hub.reload_report = (first or SwapReport("none", swap.version, reason="no change yet")).as_dict()
    log.info("reload: watching %s", ", ".join(str(p) for p in folders))
    loop = asyncio.get_running_loop()
    if supervised():  # the supervisor says so when a restart this process asked for failed
        loop.add_signal_handler(signal.SIGUSR1, _restart_failed, swap)
    try:
        async for changes in awatch(*folders, watch_filter=wanted, debounce=debounce_ms, step=STEP_MS, stop_event=stop_event):
            changed = {Path(path).resolve() for _, path in changes}
            apply_change(swap, changed, on_restart)
    finally:
        if supervised():
            loop.remove_signal_handler(signal.SIGUSR1)


def _restart_failed(swap: CodeSwap) -> None:
    status = restart_status() or {}
    report = SwapReport(
        "failed", swap.version, reason=str(status.get("reason", "")),
        error=str(status.get("error", "the new process did not start")),
    )
    swap.last = report
    swap.hub.reload_report = report.as_dict()
    _reloads.add(1, {"path": report.path})

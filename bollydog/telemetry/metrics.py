"""The "bollydog" meter: message counts, failures, handler duration, retries, dead letters, and
gauges of the hub's queue depth and in-flight work.

Instruments are created on a meter from the plugin's own MeterProvider. Retries and dead
letters reach them through the hub's hooks (``hub.hooks.retrying``/``dead_lettered``), which
the plugin listens to while it runs: the retry layer and the transports report there without
knowing whether telemetry is on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, ObservableGauge, Observation

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.hooks import DeadLetter
    from bollydog.models.base import BaseMessage
    from bollydog.types import HubT

METER_NAME = "bollydog"
#: Semantic-convention buckets for durations in seconds (the SDK default suits milliseconds).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Instruments:
    """The instruments of one meter; ``observe(hub)`` adds the hub gauges."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        # Counts are kept in plain dicts and reported by observable counters: a dict increment
        # on the dispatch path instead of the SDK's per-call attribute validation and hashing.
        self._handled: dict[tuple[str, str, str], int] = {}
        self._failed: dict[tuple[str, str, str, str], int] = {}
        self.handled = meter.create_observable_counter(
            "bollydog.messages.handled", callbacks=[self._observe_handled], unit="{message}",
            description="Handler executions finished, by message (domain.name) and outcome (ok, error, timeout, cancelled).",
        )
        self.failed = meter.create_observable_counter(
            "bollydog.messages.failed", callbacks=[self._observe_failed], unit="{message}",
            description="Handler executions that did not succeed, by domain, name, outcome and error.type.",
        )
        try:
            self.duration = meter.create_histogram(
                "bollydog.handler.duration", unit="s", description="Handler execution time, retries included.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # opentelemetry-api < 1.23
            self.duration = meter.create_histogram(
                "bollydog.handler.duration", unit="s", description="Handler execution time, retries included."
            )
        self.retries = meter.create_counter(
            "bollydog.messages.retried", unit="{retry}", description="Deliveries retried after a failure."
        )
        self.dead_letters = meter.create_counter(
            "bollydog.messages.dead_lettered", unit="{message}",
            description="Messages given up on and moved to a dead-letter stream.",
        )
        self._hubs: list[weakref.ref[HubT]] = []
        self._gauges: list[ObservableGauge] = []

    def count(self, domain: str, name: str, outcome: str, error: BaseException | None) -> None:
        key = (domain, name, outcome)
        self._handled[key] = self._handled.get(key, 0) + 1
        if error is not None:
            failed = (domain, name, outcome, type(error).__qualname__)
            self._failed[failed] = self._failed.get(failed, 0) + 1

    def _observe_handled(self, options: CallbackOptions) -> Iterable[Observation]:
        # list() copies in one C call: safe against the event loop adding keys meanwhile.
        for (domain, name, outcome), value in list(self._handled.items()):
            yield Observation(value, {"message": f"{domain}.{name}", "domain": domain, "name": name, "outcome": outcome})

    def _observe_failed(self, options: CallbackOptions) -> Iterable[Observation]:
        for (domain, name, outcome, error_type), value in list(self._failed.items()):
            yield Observation(value, {
                "message": f"{domain}.{name}", "domain": domain, "name": name, "outcome": outcome,
                "error.type": error_type,
            })

    def observe(self, hub: "HubT") -> None:
        """Report ``hub.queue_size`` and ``hub.task_count`` as observable gauges."""
        if any(ref() is hub for ref in self._hubs):
            return
        self._hubs.append(weakref.ref(hub))
        if self._gauges:
            return
        self._gauges = [
            self.meter.create_observable_gauge(
                "bollydog.hub.queue_size", callbacks=[self._observer("queue_size")], unit="{message}",
                description="Messages waiting in the hub queue.",
            ),
            self.meter.create_observable_gauge(
                "bollydog.hub.task_count", callbacks=[self._observer("task_count")], unit="{message}",
                description="Messages being handled now (in flight).",
            ),
        ]

    def _observer(self, attribute: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            hubs = [ref() for ref in self._hubs]
            live = [hub for hub in hubs if hub is not None]
            for hub in live:
                # One hub per process is the rule; several get an index so series stay distinct.
                attributes = {"bollydog.hub.index": live.index(hub)} if len(live) > 1 else None
                yield Observation(getattr(hub, attribute), attributes)

        return observe


def record_retry(
    instruments: Instruments | None, message: "BaseMessage", attempt: int, error: BaseException | None = None,
    delay: float | None = None,
) -> None:
    """One retry of ``message`` (delivery ``attempt`` failed and will be retried): a ``retry``
    event on the current span, the execution's retry count (the handler span's
    ``bollydog.retries``), and the retry counter when ``instruments`` are given."""
    from bollydog.telemetry.tracing import current_execution

    execution = current_execution.get()
    if execution is not None and execution.message is message:
        execution.retries += 1
    span = trace.get_current_span()
    if span.is_recording():
        attributes: dict[str, Any] = {"bollydog.delivery": attempt}
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
        if delay is not None:
            attributes["bollydog.retry.delay"] = delay
        span.add_event("retry", attributes)
    if instruments is not None:
        instruments.retries.add(
            1, {"message": f"{message.domain}.{message.name}", "domain": message.domain, "name": message.name}
        )


def record_dead_letter(instruments: Instruments | None, dead_letter: "DeadLetter") -> None:
    """A message moved to a dead-letter store: an event on the current span and the counter.

    The counter's attributes are ``message`` (the canonical name), ``domain`` and ``name``; ``reason`` is free text (transports
    pass error messages) and goes on the span event only: as a metric attribute every value
    would be a new series.
    """
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("dead_letter", {"bollydog.message.name": dead_letter.name, "bollydog.reason": dead_letter.reason})
    if instruments is not None:
        instruments.dead_letters.add(1, {
            "message": dead_letter.name, "domain": dead_letter.domain, "name": dead_letter.name.rpartition(".")[2],
        })

"""When a schedule fires: a fixed interval or a cron expression, as wall-clock tick times.

Ticks are absolute times (Unix seconds), computed the same way in every process, so that the
processes of a split deployment agree on which tick is due and claim it under one key. An
interval of ``n`` seconds ticks at the multiples of ``n`` since the epoch (``every: 60`` fires
on each full minute), not ``n`` seconds after whichever process started.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bollydog.errors import ConfigError, MissingDependencyError

__all__ = ["Cron", "Interval", "Trigger"]


class Trigger(Protocol):
    """A schedule's tick times."""

    def next_after(self, moment: float) -> float:
        """The first tick strictly after ``moment`` (Unix seconds)."""
        ...

    def describe(self) -> str:
        """What ``bollydog ls`` shows: ``every 60s``, ``cron */5 * * * * (UTC)``."""
        ...


@dataclass(frozen=True, slots=True)
class Interval:
    """Every ``seconds`` seconds, at the multiples of ``seconds`` since the epoch."""

    seconds: float

    def __post_init__(self) -> None:
        if not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"every: expected a positive number of seconds, got {self.seconds!r}")

    def next_after(self, moment: float) -> float:
        return (math.floor(moment / self.seconds) + 1) * self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (five fields, croniter's syntax), read in ``timezone`` (UTC default)."""

    expression: str
    timezone: str = "UTC"
    _zone: datetime.tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        croniter = _croniter()
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            raise ConfigError(
                f"cron: {self.expression!r} is not a valid cron expression "
                "(five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *')"
            )
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone: unknown time zone {self.timezone!r} (e.g. UTC, Europe/Paris)") from None
        object.__setattr__(self, "_zone", zone)

    def next_after(self, moment: float) -> float:
        start = datetime.datetime.fromtimestamp(moment, self._zone)
        return float(_croniter()(self.expression, start).get_next(float))

    def describe(self) -> str:
        return f"cron {self.expression} ({self.timezone})"


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise MissingDependencyError("cron schedules", "schedule", "croniter") from None
    return croniter

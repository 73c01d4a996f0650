"""Schedules: Commands dispatched on an interval or a cron expression (see docs/schedules.md)."""

from bollydog.schedule.clock import Clock, ManualClock, SystemClock
from bollydog.schedule.scheduler import Planned, Scheduler, cron, declared_schedules, every
from bollydog.schedule.triggers import Cron, Interval, Trigger

__all__ = [
    "Clock", "Cron", "Interval", "ManualClock", "Planned", "Scheduler", "SystemClock", "Trigger",
    "cron", "declared_schedules", "every",
]

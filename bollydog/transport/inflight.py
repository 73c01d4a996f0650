"""The deliveries a process is running, across its domains: bounded, kept alive, drained on stop.

Every stream transport starts one task per entry it delivers (:meth:`Inflight.start`) and
records which entry it is (:class:`InflightEntry`). The record serves three purposes: the
bound (``concurrency``: readers wait on :attr:`Inflight.capacity` when it is reached), keeping
the entries of long handlers from looking idle (:meth:`Inflight.stale`, which the reclaimer
touches), and never claiming an entry this process is already running (:meth:`Inflight.holds`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["Inflight", "InflightEntry"]

log = logging.getLogger("bollydog.transport")


@dataclass(slots=True)
class InflightEntry:
    """A stream entry being delivered here."""

    stream: str
    domain: str
    entry_id: str
    touched: float  # monotonic time its idle time was last reset


class Inflight:
    """The running deliveries: at most ``limit``, each with its entry."""

    __slots__ = ("limit", "capacity", "_tasks", "_ids")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Set while fewer than ``limit`` deliveries run: readers wait on it before reading.
        self.capacity = asyncio.Event()
        self.capacity.set()
        self._tasks: dict[asyncio.Task[None], InflightEntry] = {}
        self._ids: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def room(self, batch: int) -> int:
        """How many entries to read now: ``batch`` at most, never past the bound, at least one."""
        return max(1, min(batch, self.limit - len(self._tasks)))

    def holds(self, stream: str, entry_id: str) -> bool:
        """Whether that entry is being delivered here (a reclaim must not start it twice)."""
        return (stream, entry_id) in self._ids

    def start(self, delivery: Coroutine[Any, Any, None], stream: str, domain: str, entry_id: str) -> None:
        """Run ``delivery`` (the handling of that entry) in a task of its own."""
        task = asyncio.create_task(delivery)
        self._tasks[task] = InflightEntry(stream, domain, entry_id, time.monotonic())
        self._ids.add((stream, entry_id))
        if len(self._tasks) >= self.limit:
            self.capacity.clear()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        entry = self._tasks.pop(task, None)
        if entry is not None:
            self._ids.discard((entry.stream, entry.entry_id))
        if len(self._tasks) < self.limit:
            self.capacity.set()
        if not task.cancelled() and task.exception() is not None:
            # Not acknowledged: redelivered after claim_idle, dead-lettered after max_deliveries.
            log.error("delivery of %s %s crashed", entry and entry.stream, entry and entry.entry_id,
                      exc_info=task.exception())

    def stale(self, domain: str, age: float) -> dict[str, list[str]]:
        """The entries of ``domain`` not touched for ``age`` seconds, by stream; from now on
        they count as touched (the caller resets their idle time)."""
        now = time.monotonic()
        stale: dict[str, list[str]] = {}
        for entry in self._tasks.values():
            if entry.domain == domain and now - entry.touched >= age:
                stale.setdefault(entry.stream, []).append(entry.entry_id)
                entry.touched = now
        return stale

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the running deliveries, then cancel the others:
        their entries stay unacknowledged, for another consumer to reclaim."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

"""The scheduler's clock: the system's, or one a test moves by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock time (Unix seconds) and a way to wait for it."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.time()`` and ``asyncio.sleep``."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that stands still until :meth:`advance` (or :meth:`set`) moves it, for tests of
    cron and interval ticks.

    ``await clock.asleep()`` waits until a scheduler waits on the clock (it has read the time
    and planned its next tick); ``await clock.advance(60)`` moves the time, wakes the sleepers
    whose time came, and returns once they are asleep again: the ticks that came due were
    dispatched (their handlers may still run: ``await hub.drain(5)``).
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + max(0.0, seconds), future))
        self._changed.set()
        try:
            await future
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not future]

    @property
    def sleeping(self) -> int:
        """How many wait on this clock now."""
        return sum(not f.done() for _, f in self._sleepers)

    async def asleep(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` tasks wait on this clock (TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while self.sleeping < count:
                self._changed.clear()
                await self._changed.wait()

    async def advance(self, seconds: float) -> None:
        """Move the time on by ``seconds`` (see the class documentation)."""
        await self.set(self.now + seconds)

    async def set(self, now: float) -> None:
        """Move the time to ``now``; return once the sleepers it woke wait again."""
        waiting = self.sleeping
        self.now = now
        for wake, future in self._sleepers:
            if wake <= now and not future.done():
                future.set_result(None)
        await asyncio.sleep(0)  # let the woken run before counting who sleeps again
        await self.asleep(waiting)

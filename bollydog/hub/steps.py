"""Values an orchestration asks for by yielding, so that a durable run can record them.

``t = yield Now()``, ``n = yield Random()``, ``key = yield NewId()``, ``yield Sleep(30)``: in any
generator handler they give the current time, a random float in [0, 1), a new 32-hex id, or
wait. In a ``@durable`` handler (bollydog.durable) each is a step of the log: a replay gets the
recorded value back, and a sleep interrupted by a crash ends at the time first recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

__all__ = ["LocalStep", "NewId", "Now", "Random", "Sleep"]


class LocalStep:
    """A step the orchestration driver answers itself, without dispatching anything."""

    __slots__ = ()
    kind = "local"

    def value(self) -> Any:
        """The value a live run records (for :class:`Sleep`: when it ends)."""
        raise NotImplementedError

    async def settle(self, recorded: Any) -> Any:
        """What the handler gets back, from the (live or recorded) ``value``."""
        return recorded

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Now(LocalStep):
    """The current Unix time."""

    __slots__ = ()
    kind = "now"

    def value(self) -> float:
        return time.time()


class Random(LocalStep):
    """A random float in [0, 1)."""

    __slots__ = ()
    kind = "random"

    def value(self) -> float:
        return random.random()


class NewId(LocalStep):
    """A new random id, 32 hex digits."""

    __slots__ = ()
    kind = "id"

    def value(self) -> str:
        return uuid.uuid4().hex


class Sleep(LocalStep):
    """Wait ``seconds``; durable, the wait ends when first planned, whatever restarts between."""

    __slots__ = ("seconds",)
    kind = "sleep"

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise ValueError(f"Sleep takes a number of seconds >= 0, got {seconds!r}")
        self.seconds = float(seconds)

    def value(self) -> float:
        return time.time() + self.seconds  # the wake-up time, recorded before the wait

    async def settle(self, recorded: Any) -> None:
        await asyncio.sleep(max(0.0, float(recorded) - time.time()))

    def __repr__(self) -> str:
        return f"Sleep({self.seconds:g})"

"""Handlers of the schedule tests: each call is recorded (in memory, and in Redis when
TICKS_REDIS_URL and TICKS_KEY are set, for the two-process test)."""

from __future__ import annotations

import os
import time

from bollydog.globals import message
from bollydog.models.base import Command, Event
from bollydog.schedule import every

CALLS: list[dict[str, object]] = []


class Tick(Command):
    label: str = "tick"


class Sweep(Command):
    older_than: int


@every(3600, name="hourly-sweep", older_than=7)
class Purge(Command):
    """Declared in code: runs every hour."""

    older_than: int = 1


class Ticked(Event):
    label: str


async def tick(command: Tick) -> str:
    CALLS.append({"label": command.label, "trace_id": command.trace_id, "name": command.name,
                  "at": time.time(), "parent": message.parent_span_id})
    url, key = os.environ.get("TICKS_REDIS_URL"), os.environ.get("TICKS_KEY")
    if url and key:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            await client.rpush(key, f"{os.getpid()} {command.created_time}")  # made right after its tick
        finally:
            await client.aclose()
    return command.label


async def sweep(command: Sweep) -> int:
    CALLS.append({"label": f"sweep {command.older_than}"})
    return command.older_than


async def purge(command: Purge) -> None:
    CALLS.append({"label": "purge"})


async def ticked(event: Ticked) -> None:
    CALLS.append({"label": f"ticked {event.label}"})

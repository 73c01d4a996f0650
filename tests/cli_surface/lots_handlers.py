"""Domain "lots" of the CLI surface tests: a fast command, a slow one, a list field."""

from __future__ import annotations

import asyncio
import os

from bollydog.models.base import Command, Event


class Ping(Command):
    domain = "lots"


class Slow(Command):
    domain = "lots"
    seconds: float


class Park(Command):
    domain = "lots"
    plates: list[str]
    spots: set[int] = set()
    note: str = ""


async def ping(command: Ping) -> int:
    return os.getpid()  # which process served it


async def slow(command: Slow) -> int:
    await asyncio.sleep(command.seconds)
    return os.getpid()


async def park(command: Park) -> dict[str, object]:
    return {"plates": command.plates, "spots": sorted(command.spots), "note": command.note}


class Parked(Event):
    domain = "lots"
    plate: str


async def count_parked(event: Parked) -> None:
    return None

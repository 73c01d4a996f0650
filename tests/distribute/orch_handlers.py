"""Domain "orch": an async-generator handler whose sub-commands run in another process."""

from __future__ import annotations

import asyncio
from typing import Any

from bollydog.models.base import Command
from tests.distribute.calc_handlers import Add, Fail, WhoAmI


class Orchestrate(Command):
    domain = "orch"
    a: int
    b: int


async def orchestrate(command: Orchestrate) -> Any:
    total = yield Add(a=command.a, b=command.b)
    nested = yield WhoAmI()
    try:
        yield Fail(text="inner")
    except Exception as exc:  # the remote failure is thrown back into the generator
        caught = f"{type(exc).__name__}: {exc}"
    yield {"total": total, "nested": nested, "caught": caught, "span_id": command.span_id,
           "trace_id": command.trace_id}


class PausedOrchestrate(Command):
    """Waits, then asks calc: a remote request issued while its own process is stopping."""

    domain = "orch"
    pause: float


async def paused_orchestrate(command: PausedOrchestrate) -> Any:
    await asyncio.sleep(command.pause)
    total = yield Add(a=1, b=2, expire_time=5)
    yield total

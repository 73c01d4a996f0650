"""Domain "tooldemo" of the MCP tests: one Command per behaviour a tool can have."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from bollydog.models.base import Command, Event, Session


class Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class Echo(Command):
    """Repeat a text."""

    text: str
    times: int = Field(1, ge=1, le=10)


class Add(Command):
    """Add two integers."""

    a: int
    b: int


class Order(Command):
    """Total units of some order lines."""

    lines: list[Line] = Field(min_length=1)


class Boom(Command):
    """Always fails."""


class Countdown(Command):
    """Count down from n, one partial result per step."""

    n: int = Field(ge=0, le=20)


class Sleepy(Command):
    """Takes longer than it may."""

    default_expire_time = 0.2
    seconds: float = 5.0


class Pause(Command):
    """Wait a while, then answer."""

    seconds: float = Field(ge=0, le=5)


class WhoAmI(Command):
    """Who the handler runs for, and in which trace."""

    mcp_annotations = {"readOnlyHint": True, "idempotentHint": True}


class Wipe(Command):
    """Delete everything (it does not, it is a test)."""

    mcp_annotations = {"destructiveHint": True, "title": "Wipe all data"}


class Wiped(Event):
    """Not a tool: events are not called."""


class Report(BaseModel):
    echoed: str
    length: int


async def echo(command: Echo) -> Report:
    """Returns the echoed text and its length."""
    text = command.text * command.times
    return Report(echoed=text, length=len(text))


async def add(command: Add) -> int:
    return command.a + command.b


async def order(command: Order) -> dict[str, int]:
    return {"units": sum(line.quantity for line in command.lines)}


async def boom(command: Boom) -> None:
    raise ValueError("boom went the handler")


async def countdown(command: Countdown):
    for left in range(command.n, 0, -1):
        yield {"left": left}
    yield "liftoff"


async def sleepy(command: Sleepy) -> float:
    await asyncio.sleep(command.seconds)
    return command.seconds


async def pause(command: Pause) -> float:
    await asyncio.sleep(command.seconds)
    return command.seconds


async def who_am_i(command: WhoAmI, session: Session) -> dict[str, Any]:
    return {
        "username": session.username,
        "created_by": command.created_by,
        "trace_id": command.trace_id,
        "parent_span_id": command.parent_span_id,
    }


async def wipe(command: Wipe):
    yield Wiped()
    yield "wiped"


async def wiped(event: Wiped) -> None:
    return None

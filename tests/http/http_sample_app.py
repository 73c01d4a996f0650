"""Messages and handlers served by the HTTP tests (domain ``demo``, app ``svc``)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from bollydog.models.base import Command, Session


class Item(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Echo(Command):
    """Echo a text back, with who asked and in which trace."""

    domain = "demo"
    text: str
    times: int = 1


class Add(Command):
    domain = "demo"
    a: int
    b: int


class Basket(Command):
    """Total quantity of a list of items."""

    domain = "demo"
    items: list[Item] = Field(min_length=1)
    tags: dict[str, str] = Field(default_factory=dict)


class Fail(Command):
    domain = "demo"


class Slow(Command):
    domain = "demo"
    delay: float = 0.2


class Progress(Command):
    """Streams one partial result per step."""

    domain = "demo"
    steps: int = 3
    fail_at: int | None = None


class Tally(Command):
    domain = "demo"
    key: str


class Ping(Command):
    domain = "demo"


CALLS: dict[str, int] = {}


async def echo(command: Echo, session: Session) -> dict:
    return {
        "text": command.text * command.times,
        "user": session.username if session else None,
        "anonymous": session.data.get("anonymous") if session else None,
        "created_by": command.created_by,
        "trace_id": command.trace_id,
        "parent_span_id": command.parent_span_id,
        "priority": command.priority,
    }


async def add(command: Add) -> int:
    return command.a + command.b


async def basket(command: Basket) -> int:
    return sum(i.quantity for i in command.items)


async def fail(command: Fail) -> None:
    raise ValueError("boom: something broke")


async def slow(command: Slow) -> str:
    await asyncio.sleep(command.delay)
    return "slept"


async def progress(command: Progress):
    for step in range(command.steps):
        if command.fail_at == step:
            raise RuntimeError(f"failed at step {step}")
        yield {"step": step}
        await asyncio.sleep(0)
    yield {"done": command.steps}


async def tally(command: Tally) -> int:
    CALLS[command.key] = CALLS.get(command.key, 0) + 1
    await asyncio.sleep(0.15)
    return CALLS[command.key]


async def ping(command: Ping) -> str:
    return "pong"

"""Handlers served by the WebSocket tests, in domain ``wsdemo``."""

from __future__ import annotations

import asyncio
from typing import Any

from bollydog.globals import message as current_message
from bollydog.models.base import Command, Event, Session


class Echo(Command):
    domain = "wsdemo"
    text: str
    times: int = 1


class Slow(Command):
    domain = "wsdemo"
    delay: float
    tag: str


class Countdown(Command):
    domain = "wsdemo"
    n: int


class Boom(Command):
    domain = "wsdemo"


class WhoAmI(Command):
    domain = "wsdemo"


class Secret(Command):
    domain = "wsdemo"


class Pinged(Event):
    domain = "wsdemo"
    value: int


class Ring(Command):
    """Publishes a Pinged event, then returns."""

    domain = "wsdemo"
    value: int


SEEN: list[int] = []


async def echo(command: Echo) -> dict[str, Any]:
    return {"echo": command.text * command.times}


async def slow(command: Slow) -> str:
    await asyncio.sleep(command.delay)
    return command.tag


async def countdown(command: Countdown):
    for i in range(command.n, 0, -1):
        yield {"left": i}
        await asyncio.sleep(0.01)
    yield "liftoff"


async def boom(command: Boom) -> None:
    raise ValueError("boom went the handler")


async def who_am_i(command: WhoAmI, session: Session) -> dict[str, Any]:
    msg = current_message._get_current_object()
    return {
        "session": session.uid if session else None,
        "username": session.username if session else None,
        "created_by": msg.created_by,
        "trace_id": msg.trace_id,
        "parent_span_id": msg.parent_span_id,
    }


async def secret(command: Secret) -> str:
    return "classified"


async def pinged(event: Pinged) -> int:
    SEEN.append(event.value)
    return event.value


async def ring(command: Ring):
    yield Pinged(value=command.value)
    yield "rung"


class Feedback(Event):
    """An Event clients may publish (opts in)."""

    domain = "wsdemo"
    accept_from_clients = True
    text: str


FEEDBACK: list[str] = []


async def feedback(event: Feedback) -> str:
    FEEDBACK.append(event.text)
    return event.text

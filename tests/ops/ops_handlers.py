"""Messages and handlers of the operations tests (domain ``shop``)."""

from __future__ import annotations

import asyncio

from bollydog import globals as current
from bollydog.models.base import Command

#: Gates a test opens to let a Hold command finish (key -> event).
GATES: dict[str, asyncio.Event] = {}


class Add(Command):
    domain = "shop"
    a: int
    b: int


class WhoAmI(Command):
    """What the context-local proxies say inside the handler."""

    domain = "shop"


class Hold(Command):
    """Runs until its gate opens: in-flight work for drain tests."""

    domain = "shop"
    key: str


async def add(command: Add) -> int:
    return command.a + command.b


async def who_am_i(command: WhoAmI) -> dict[str, object]:
    return {
        "message": type(current.message._get_current_object()).__name__,
        "domain": current.app.domain,
        "hub_running": current.hub.accepting,
    }


async def hold(command: Hold) -> str:
    await GATES.setdefault(command.key, asyncio.Event()).wait()
    return "released"

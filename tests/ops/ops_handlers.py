"""Messages and handlers of the operations tests (domain ``shop``)."""

from __future__ import annotations

import asyncio
import os

from bollydog import globals as current
from bollydog.models.base import Command
from bollydog.models.service import AppService

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


class SlowStartService(AppService):
    """An app whose start takes ``OPS_START_DELAY`` seconds (a database warming up), and which
    then leaves one Hold command running: the process has work to drain when it stops."""

    async def on_start(self) -> None:
        await super().on_start()
        await asyncio.sleep(float(os.environ.get("OPS_START_DELAY", "0")))

    async def on_started(self) -> None:
        if os.environ.get("OPS_HOLD"):
            await self.hub.put_message(Hold(key=os.environ["OPS_HOLD"]))

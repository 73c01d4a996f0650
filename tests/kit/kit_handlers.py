"""Domain ``kitdemo``: Commands every entrypoint serves in the kit's tests."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from bollydog.models.base import Command, Session


class Label:
    """A value JSON cannot hold, whose str() and repr() differ."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return f"label {self.text}"

    def __repr__(self) -> str:
        return f"Label({self.text!r})"


class Priced(Command):
    """Answers values JSON cannot hold as such."""

    domain = "kitdemo"


class Ping(Command):
    domain = "kitdemo"


class Pause(Command):
    """Sleeps ``seconds``."""

    domain = "kitdemo"
    seconds: float


class Gate(Command):
    """Waits until the test opens the gate; counts how many wait at once."""

    domain = "kitdemo"


class WhoAmI(Command):
    domain = "kitdemo"


class WhichTask(Command):
    """Answers the id of the task its handler runs in."""

    domain = "kitdemo"


class Gates:
    """What the gate handlers share with the test that drives them."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.running = 0
        self.most = 0
        self.entered = asyncio.Event()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


gates = Gates()


async def priced(command: Priced) -> dict[str, Any]:
    return {"price": Decimal("1.50"), "label": Label("x"), "ratio": float("nan"), "tags": {"a"}}


async def ping(command: Ping) -> str:
    return "pong"


async def pause(command: Pause) -> float:
    await asyncio.sleep(command.seconds)
    return command.seconds


async def gate(command: Gate) -> str:
    gates.running += 1
    gates.most = max(gates.most, gates.running)
    gates.entered.set()
    try:
        await gates.opened.wait()
    finally:
        gates.running -= 1
    return "through"


async def who_am_i(command: WhoAmI, session: Session) -> dict[str, Any]:
    return {"username": session.username, "data": session.data}


async def which_task(command: WhichTask) -> int:
    return id(asyncio.current_task())

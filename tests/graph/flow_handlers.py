"""Handlers whose sends the graph must (and must not) read."""

from __future__ import annotations

from bollydog.globals import hub
from bollydog.models.base import BaseDomain, Command, Event


class Start(Command):
    pass


class Step(Command):
    n: int = 0


class Other(Command):
    pass


class Later(Command):
    pass


class Done(Event):
    pass


class Noted(Event):
    pass


class Order(BaseDomain):
    pass


async def start(command: Start):
    yield Step(n=1)
    yield [Step(n=i) for i in range(3)]
    yield (Other(), Step())
    hidden = Later()
    yield hidden  # in a variable: not read
    yield Done()


async def step(command: Step) -> Other | None:
    hub.publish_nowait(Noted())
    if command.n != 1:
        return None
    return Other()


async def other(command: Other) -> None:
    await hub.put_message(Later())
    Order().raise_event(Noted())


async def later(command: Later) -> int:
    return await hub.execute(Step(n=2)) or 0


async def noted(event: Noted | Done) -> None:
    pass

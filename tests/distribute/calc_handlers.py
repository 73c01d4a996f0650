"""Domain "calc", hosted by the consumer side of the distribution tests."""

from __future__ import annotations

import asyncio
from typing import Any

from bollydog.errors import DomainError
from bollydog.models.base import Command, Event, Session
from bollydog.service.app import HubService

#: What handlers saw, in order (in-process tests only).
RECORDED: list[str] = []
NOTED: list[tuple[str, str]] = []
SLOW_RUNS: list[float] = []


class Add(Command):
    domain = "calc"
    a: int
    b: int


class Fail(Command):
    domain = "calc"
    text: str


class Slow(Command):
    domain = "calc"
    seconds: float


class Record(Command):
    domain = "calc"
    tag: str


class Queued(Command):
    """Waits for a consumer of calc rather than being refused when none is up."""

    domain = "calc"
    wait_for_consumer = True
    tag: str


class Count(Command):
    """An async-generator handler: partial results ``{"i": 0}`` ... then ``{"done": n}`` (or,
    with ``fail``, a ValueError after the ``{"i": ...}`` ones)."""

    domain = "calc"
    n: int
    pause: float = 0.0
    fail: bool = False


class WhoAmI(Command):
    domain = "calc"


class Work(Command):
    """The multi-process test's command: 5 ms of awaited work."""

    domain = "calc"
    n: int


class Where(Command):
    """Which consumer ran it: the name of its process's transport in the consumer group."""

    domain = "calc"
    pause: float = 0.0


class Noted(Event):
    domain = "calc"
    text: str


class OutOfStock(Exception):
    pass


class Sold(DomainError):
    """A domain error with its own status, importable by every process."""

    status_code = 409
    exit_code = 3


def _unimportable() -> type[DomainError]:
    class Gone(DomainError):  # defined in a function: no other process can look it up
        status_code = 410
        exit_code = 4

    return Gone


async def add(command: Add) -> int:
    return command.a + command.b


async def fail(command: Fail) -> None:
    if command.text == "custom":
        raise OutOfStock("no more widgets")
    if command.text == "sold":
        raise Sold("the last widget is sold", item="widget")
    if command.text == "gone":
        raise _unimportable()("that widget is gone for good", item="widget")
    raise ValueError(command.text)


async def slow(command: Slow) -> float:
    SLOW_RUNS.append(command.seconds)
    await asyncio.sleep(command.seconds)
    return command.seconds


async def record(command: Record) -> str:
    RECORDED.append(command.tag)
    await asyncio.sleep(0.001)
    return command.tag


async def queued(command: Queued) -> str:
    RECORDED.append(command.tag)
    return command.tag


async def count(command: Count) -> Any:
    for i in range(command.n):
        yield {"i": i}
        if command.pause:
            await asyncio.sleep(command.pause)  # partials travel while the handler still runs
    if command.fail:
        raise ValueError(f"counted to {command.n}")
    yield {"done": command.n}


async def who_am_i(command: WhoAmI, session: Session) -> dict[str, Any]:
    return {
        "username": session.username if session is not None else None,
        "session_uid": session.uid if session is not None else None,
        "iid": command.iid,
        "trace_id": command.trace_id,
        "span_id": command.span_id,
        "parent_span_id": command.parent_span_id,
        "priority": command.priority,
        "created_by": command.created_by,
    }


async def work(command: Work) -> int:
    await asyncio.sleep(0.005)
    return command.n * 2


async def where(command: Where, hub: HubService) -> str:
    await asyncio.sleep(command.pause)
    return hub.transport.consumer  # type: ignore[attr-defined, no-any-return]


async def noted(event: Noted) -> None:
    NOTED.append(("calc", event.text))


class Label:
    def __str__(self) -> str:
        return "label x"

    def __repr__(self) -> str:
        return "Label('x')"


class Odd(Command):
    """Answers values JSON cannot hold as such."""

    domain = "calc"


async def odd(command: Odd) -> dict[str, Any]:
    return {"label": Label(), "ratio": float("nan")}

"""Domain "saga": a five-step durable orchestration whose steps write to the database.

``SAGA_CRASH=before:N`` (environment) SIGKILLs the process inside step N's handler, after its
write and before its commit; ``after:N`` right after step N committed (see saga_crash.py).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol
from bollydog.durable import NewId, Now, Random, Sleep, durable
from bollydog.errors import DomainError
from bollydog.hub.waiting import WaitFor
from bollydog.models.base import Command, Event

STEPS = 5


class Base(DeclarativeBase):
    pass


class EffectRow(Base):
    __tablename__ = "saga_effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(32))


class StepFailed(DomainError):
    status_code = 409


class Effect(Command):
    key: str
    step: int
    fail: bool = False


class Undo(Command):
    key: str
    step: int


class Fulfil(Command):
    key: str
    fail_at: int = 0


async def effect(command: Effect, protocol: SqlAlchemyProtocol) -> dict[str, Any]:
    await protocol.add(EffectRow(key=command.key, step=command.step, kind="do", message_id=command.iid))
    if os.environ.get("SAGA_CRASH") == f"before:{command.step}":
        os.kill(os.getpid(), signal.SIGKILL)
    if command.fail:
        raise StepFailed(f"step {command.step} refused", step=command.step)
    return {"step": command.step, "value": command.step * 10}


async def undo(command: Undo, protocol: SqlAlchemyProtocol) -> None:
    await protocol.add(EffectRow(key=command.key, step=command.step, kind="undo", message_id=command.iid))


@durable(version="1")
async def fulfil(command: Fulfil) -> Any:
    total = 0
    done: list[int] = []
    try:
        for step in range(1, STEPS + 1):
            result = yield Effect(key=command.key, step=step, fail=step == command.fail_at)
            total += result["value"]
            done.append(step)
    except StepFailed:
        for step in reversed(done):  # compensation: plain try/except
            yield Undo(key=command.key, step=step)
        raise
    yield {"key": command.key, "total": total}


class Pinged(Event):
    key: str
    n: int


class Timed(Command):
    key: str
    nap: float = 0.3


@durable
async def timed(command: Timed) -> Any:
    started = yield Now()
    token = yield NewId()
    luck = yield Random()
    yield Sleep(command.nap)
    ping = yield WaitFor(Pinged, match={"key": command.key}, timeout=5)
    yield {"started": started, "token": token, "luck": luck, "ping": ping.n, "ping_id": ping.iid}


class Napper(Command):
    nap: float


@durable
async def napper(command: Napper) -> Any:
    yield Sleep(command.nap)
    yield "woke"

"""Domain "relay": a durable run of ``steps`` slow steps, each a Command that writes a mark.

Each :class:`Mark` waits ``hold`` seconds, then writes one row naming the process that wrote it and when
(outside a transaction while it waits, so that a paused process holds no database lock).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol
from bollydog.durable import Sleep, durable
from bollydog.models.base import Command, Event


class Base(DeclarativeBase):
    pass


class MarkRow(Base):
    __tablename__ = "relay_marks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)


class Mark(Command):
    key: str
    step: int
    hold: float


class Relay(Command):
    default_expire_time = 120.0

    key: str
    steps: int = 5
    hold: float = 0.3
    nap: float = 0.0  # a durable Sleep after each step


class Relayed(Event):
    key: str


async def mark(command: Mark, protocol: SqlAlchemyProtocol) -> int:
    await asyncio.sleep(command.hold)
    await protocol.add(MarkRow(key=command.key, step=command.step, pid=os.getpid(), at=time.time()))
    return command.step


@durable(version="1")
async def relay(command: Relay) -> Any:
    done = 0
    try:
        for step in range(1, command.steps + 1):
            yield Mark(key=command.key, step=step, hold=command.hold)
            done += 1
            if command.nap:
                yield Sleep(command.nap)
    except Exception:
        yield Mark(key=command.key, step=0, hold=0)  # the compensation: a mark of step 0
        raise
    yield {"key": command.key, "steps": done}


@durable
async def on_relayed(event: Relayed) -> Any:  # refused when it runs: durable is for Commands
    yield Mark(key=event.key, step=1, hold=0)

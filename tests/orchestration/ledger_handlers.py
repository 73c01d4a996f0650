"""Domain "ledger": two handlers of OrderPlaced, each writing a row to the ledger's database
(``inbox: true`` in the tests), and an Event whose handler fails on its first delivery."""

from __future__ import annotations

import asyncio

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol
from bollydog.models.base import Event
from tests.orchestration.order_handlers import OrderPlaced


class Base(DeclarativeBase):
    pass


class Line(Base):
    __tablename__ = "ledger_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(16))


class Audited(Event):
    order_id: str
    pause: float = 0.0


#: Deliveries of Audited that failed on purpose, by order id.
refused: set[str] = set()


async def book_order(event: OrderPlaced, protocol: SqlAlchemyProtocol) -> None:
    await protocol.add(Line(order_id=event.order_id, by="book"))


async def count_order(event: OrderPlaced, protocol: SqlAlchemyProtocol) -> None:
    await protocol.add(Line(order_id=event.order_id, by="count"))


async def audit(event: Audited, protocol: SqlAlchemyProtocol) -> None:
    await asyncio.sleep(event.pause)
    await protocol.add(Line(order_id=event.order_id, by="audit"))
    if event.order_id.startswith("flaky") and event.order_id not in refused:
        refused.add(event.order_id)
        raise RuntimeError("refused once, after the write")  # rolled back, not recorded

"""Domain "orders": a SQL-backed order whose event the "ship" domain handles elsewhere."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bollydog.adapters.sqlalchemy import DomainEvents, SqlAlchemyProtocol
from bollydog.models.base import Command, Event


class Base(DeclarativeBase):
    pass


class Order(DomainEvents, Base):
    __tablename__ = "outbox_test_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class OrderPlaced(Event):
    domain = "orders"
    order_id: str


class PlaceOrder(Command):
    domain = "orders"
    order_id: str
    fail: bool = False


async def place_order(command: PlaceOrder, protocol: SqlAlchemyProtocol) -> str:
    order = Order(order_id=command.order_id)
    order.raise_event(OrderPlaced(order_id=command.order_id))
    await protocol.add(order)
    if command.fail:
        raise ValueError("refused after the write")  # rolled back: no order, no outbox row
    return command.order_id

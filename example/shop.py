"""A small shop: an orchestrating command, a concurrent step, an event with two handlers.

``PlaceOrder`` reserves every line concurrently, charges the customer, stores the order and
publishes ``OrderPlaced``, to which two handlers react: one e-mails the customer (here: records
the mail), one keeps sales statistics.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bollydog.adapters.memory import MemoryProtocol
from bollydog.errors import DomainError
from bollydog.models.base import BaseDomain, Command, Event


class Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class Order(BaseDomain):
    customer: str
    lines: list[Line]
    total: float
    status: str = "placed"


class Stock(BaseDomain):
    """Units left per SKU; ``iid`` is the SKU."""

    units: int


class Mail(BaseDomain):
    to: str
    subject: str


# -- messages -----------------------------------------------------------------------------------


class Restock(Command):
    sku: str = Field(min_length=1)
    units: int = Field(gt=0)


class ReserveStock(Command):
    sku: str
    quantity: int = Field(gt=0)


class ChargePayment(Command):
    customer: str
    amount: float = Field(gt=0)


class PlaceOrder(Command):
    customer: str = Field(min_length=1)
    lines: list[Line] = Field(min_length=1)
    unit_price: float = Field(10.0, gt=0)


class GetOrder(Command):
    order_id: str


class SalesReport(Command):
    """Orders placed, units sold, mails sent."""


class OrderPlaced(Event):
    order_id: str
    customer: str
    total: float
    units: int


class OutOfStock(DomainError):
    """Not enough units of a SKU: a refusal the client can act on (HTTP 409, exit status 1)."""

    status_code = 409


# -- handlers -----------------------------------------------------------------------------------


async def restock(command: Restock, protocol: MemoryProtocol) -> int:
    stock = await protocol.get(Stock, command.sku)
    units = (stock.units if stock else 0) + command.units
    await protocol.add(Stock(iid=command.sku, units=units))
    return units


async def reserve_stock(command: ReserveStock, protocol: MemoryProtocol) -> int:
    stock = await protocol.get(Stock, command.sku)
    if stock is None or stock.units < command.quantity:
        left = stock.units if stock else 0
        raise OutOfStock(f"{command.sku}: {command.quantity} wanted, {left} left")
    await protocol.update(Stock, command.sku, units=stock.units - command.quantity)
    return stock.units - command.quantity


async def charge_payment(command: ChargePayment) -> str:
    return f"charged {command.customer} {command.amount:.2f}"


async def place_order(command: PlaceOrder, protocol: MemoryProtocol):
    # Concurrent step: every line is reserved at once; a failure comes back as an ExceptionGroup.
    rejected = None
    try:
        yield [ReserveStock(sku=line.sku, quantity=line.quantity) for line in command.lines]
    except* OutOfStock as failed:
        rejected = "; ".join(str(e) for e in failed.exceptions)
    if rejected:
        yield {"status": "rejected", "reason": rejected}
        return
    units = sum(line.quantity for line in command.lines)
    total = units * command.unit_price
    receipt = yield ChargePayment(customer=command.customer, amount=total)
    yield {"status": "charged", "receipt": receipt}  # a partial result, streamed
    order = Order(customer=command.customer, lines=command.lines, total=total)
    await protocol.add(order)
    yield OrderPlaced(order_id=order.iid, customer=order.customer, total=total, units=units)
    yield {"status": "placed", "order_id": order.iid, "total": total}


async def get_order(command: GetOrder, protocol: MemoryProtocol) -> Order | None:
    return await protocol.get(Order, command.order_id)


async def send_confirmation(event: OrderPlaced, protocol: MemoryProtocol) -> None:
    await protocol.add(Mail(to=event.customer, subject=f"Order {event.order_id} confirmed"))


async def record_sale(event: OrderPlaced, protocol: MemoryProtocol) -> None:
    await protocol.add(Order(iid=f"sale-{event.order_id}", customer=event.customer, lines=[], total=event.total, status="sale"))


async def sales_report(command: SalesReport, protocol: MemoryProtocol) -> dict[str, float]:
    sales = await protocol.search(Order, status="sale")
    mails = await protocol.list(Mail)
    return {"orders": len(sales), "revenue": sum(s.total for s in sales), "mails": len(mails)}

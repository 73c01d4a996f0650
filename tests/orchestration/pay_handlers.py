"""Domain "pay": charges an order and announces the payment, possibly in another process."""

from __future__ import annotations

from bollydog.models.base import Command, Event
from bollydog.types import HubT


class Charge(Command):
    domain = "pay"
    order_id: str
    amount: float


class PaymentReceived(Event):
    domain = "pay"
    order_id: str
    amount: float


async def charge(command: Charge, hub: HubT) -> str:
    # Published in the background: it may be dispatched before or after the caller starts
    # waiting for it, which is what the wait's window is for.
    hub.publish_nowait(PaymentReceived(order_id=command.order_id, amount=command.amount))
    return f"receipt-{command.order_id}"

"""Domain "shop": a checkout that waits for the payment the "pay" domain announces."""

from __future__ import annotations

from typing import Any

from bollydog.hub.waiting import WaitFor
from bollydog.models.base import Command
from tests.orchestration.pay_handlers import Charge, PaymentReceived

seen: list[str] = []


class Checkout(Command):
    domain = "shop"
    order_id: str
    amount: float
    timeout: float = 5.0


async def checkout(command: Checkout) -> Any:
    receipt = yield Charge(order_id=command.order_id, amount=command.amount)
    payment = yield WaitFor(
        PaymentReceived, match={"order_id": command.order_id}, trace=True, timeout=command.timeout
    )
    yield {"receipt": receipt, "paid": payment.amount, "payment_trace": payment.trace_id}


async def payment_seen(event: PaymentReceived) -> None:
    # Handling the event here is what makes the transport deliver it to this domain's processes.
    seen.append(event.order_id)

"""Domain "ship": handles OrderPlaced, in another process than "orders"."""

from __future__ import annotations

from tests.orchestration.order_handlers import OrderPlaced

received: list[str] = []


async def on_order_placed(event: OrderPlaced) -> None:
    received.append(event.iid)

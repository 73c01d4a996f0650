"""The README's core examples, as one module that must pass ``mypy --strict``.

tests/test_docs.py runs the README's blocks; this module makes sure that what they show a user
writing also type-checks: a message, handlers (injected parameters, a plain ``def``), a domain
error, running a hub, and ``bollydog.testing.running_hub``. tests/test_types.py checks it with
mypy and runs it. Kept close to the README's text; where strict mode needs more (``dict[str,
object]`` for a bare ``dict``), that is the only difference.
"""

from __future__ import annotations

import asyncio

from bollydog.errors import DomainError, describe
from bollydog.models.base import Command, Event, Session
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.types import HubT
from bollydog.testing import as_user, running_hub

# -- Messages ------------------------------------------------------------------------------------


class PlaceOrder(Command):  # one handler
    customer: str
    quantity: int = 1


class OrderPlaced(Event):  # any number of handlers
    order_id: str


class Report(Command):
    day: str = "today"


# -- Handlers ------------------------------------------------------------------------------------


async def place_order(command: PlaceOrder, session: Session, hub: HubT) -> str:
    # session, hub: extra typed parameters are injected
    hub.publish_nowait(OrderPlaced(order_id="order-1"))  # its handlers run in the background
    return "order-1"


async def email_customer(event: OrderPlaced) -> None: ...


async def update_stats(event: OrderPlaced) -> None: ...  # a second handler of the same event


def legacy_report(command: Report) -> dict[str, object]:  # plain def: runs in a worker thread
    return {"day": command.day, "orders": 0}


# -- Domain errors -------------------------------------------------------------------------------


class NotAvailable(DomainError):
    status_code = 409  # HTTP status (DomainError's default: 400)
    exit_code = 3  # `bollydog execute` exit status (default 1)


class Borrow(Command):
    title: str


async def borrow(command: Borrow) -> dict[str, object]:
    raise NotAvailable(f"{command.title!r} is not on the shelf", title=command.title)


async def refuse() -> None:
    async with HubService() as hub:
        hub.register(borrow)
        try:
            await hub.execute(Borrow(title="hamlet"))
        except NotAvailable as refused:
            assert refused.title == "hamlet" and describe(refused).status == 409


# -- The hub -------------------------------------------------------------------------------------


async def main() -> None:
    app = AppService.create_from(domain="shop", handlers=[__name__])
    async with HubService(apps=[app]) as hub:
        result = await hub.execute(PlaceOrder(customer="ann"))  # runs now
        queued = await hub.put_message(PlaceOrder(customer="bob"))  # queued, returns at once
        print(result, await queued.state)  # result, or the handler's exception
        report = await hub.execute(Report())
        assert report == {"day": "today", "orders": 0}


# -- Testing your handlers -----------------------------------------------------------------------


async def test_place_order() -> None:
    async with running_hub(__name__, domain="shop") as hub:
        with as_user("ann"):
            assert await hub.execute(PlaceOrder(customer="ann")) == "order-1"
        assert [e.order_id for e in hub.published(OrderPlaced)] == ["order-1"]
        assert await hub.drain(5)  # the event's handlers, run in the background, are done


if __name__ == "__main__":
    asyncio.run(main())

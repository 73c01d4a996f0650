"""Messages and handlers of the telemetry tests (domain ``shop``).

``checkout`` orchestrates: one sub-command, then two concurrent ones (each handing off to a
``Receipt``), then an Event with two handlers.
"""

from __future__ import annotations

import asyncio
import logging

import structlog
from opentelemetry import trace

from bollydog.models.base import Command, Event
from bollydog.service.app import HubService

log = logging.getLogger("tests.telemetry.shop")


class Reserve(Command):
    domain = "shop"
    sku: str


class Charge(Command):
    domain = "shop"
    amount: int


class Receipt(Command):
    domain = "shop"
    amount: int


class Checkout(Command):
    domain = "shop"
    order: str


class Shipped(Event):
    domain = "shop"
    order: str


class Boom(Command):
    domain = "shop"


class Nap(Command):
    domain = "shop"
    seconds: float = 1.0


class Flaky(Command):
    """Fails ``failures`` times (counted per message id), then succeeds."""

    domain = "shop"
    failures: int


class Gate(Command):
    """Waits until its ``gate`` (an asyncio.Event registered by name) is set."""

    domain = "shop"
    key: str


class Traced(Command):
    """Opens a span of its own inside the handler."""

    domain = "shop"


class Enqueue(Command):
    """Queues a Reserve and returns without waiting for it."""

    domain = "shop"


GATES: dict[str, asyncio.Event] = {}
ATTEMPTS: dict[str, int] = {}


async def checkout(command: Checkout):
    reserved = yield Reserve(sku=command.order)
    receipts = yield [Charge(amount=1), Charge(amount=2)]
    yield Shipped(order=command.order)
    yield {"reserved": reserved, "charged": sum(receipts)}


async def reserve(command: Reserve) -> str:
    log.info("reserving %s", command.sku)
    structlog.get_logger("tests.telemetry.shop").info("reserved", sku=command.sku)
    return command.sku


async def charge(command: Charge) -> Receipt:
    return Receipt(amount=command.amount)  # hand-off


async def receipt(command: Receipt) -> int:
    return command.amount


async def notify(event: Shipped) -> str:
    return "notified"


async def audit(event: Shipped) -> str:
    return "audited"


async def boom(command: Boom) -> None:
    raise ValueError("boom")


async def nap(command: Nap) -> None:
    await asyncio.sleep(command.seconds)


async def flaky(command: Flaky) -> int:
    attempt = ATTEMPTS[command.iid] = ATTEMPTS.get(command.iid, 0) + 1
    if attempt <= command.failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


async def gate(command: Gate) -> str:
    await GATES[command.key].wait()
    return command.key


async def traced(command: Traced) -> str:
    with trace.get_tracer("tests").start_as_current_span("inner") as span:
        log.info("inside the user span")
        return "%016x" % span.get_span_context().span_id


async def enqueue(command: Enqueue, hub: HubService) -> str:
    queued = await hub.put_message(Reserve(sku="queued"))
    return queued.span_id

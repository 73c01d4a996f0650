"""The inbox (``inbox: true``): an Event delivered again is not handled again by a handler
whose transaction recorded it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.errors import ConfigError
from tests.distribute.conftest import wait_for
from tests.orchestration.ledger_handlers import Audited
from tests.orchestration.order_handlers import OrderPlaced, PlaceOrder


def ledger(database: Path, inbox: bool = True) -> dict[str, Any]:
    return {
        "handlers": ["tests.orchestration.ledger_handlers"],
        "unit_of_work": {
            "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork",
            "url": f"sqlite+aiosqlite:///{database}",
            "metadata": "tests.orchestration.ledger_handlers.Base",
            "inbox": inbox,
        },
        "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
    }


def lines(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return sorted(db.execute("SELECT order_id, by FROM ledger_lines"))


def inbox_rows(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return sorted(db.execute("SELECT message_id, handler FROM bollydog_inbox"))


async def test_an_event_delivered_again_is_handled_once_by_each_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="bollydog.hub")
    database = tmp_path / "ledger.db"
    async with build({"ledger": ledger(database)}, entrypoints=False).hub as hub:
        event = OrderPlaced(order_id="o-1")
        await hub.execute(event)
        await hub.execute(OrderPlaced.model_validate(event.model_dump()))  # the same id, again
        await hub.execute(OrderPlaced(order_id="o-1"))  # another Event: handled
    assert lines(database) == [("o-1", "book")] * 2 + [("o-1", "count")] * 2
    handlers = {handler for _, handler in inbox_rows(database)}
    assert handlers == {"ledger:tests.orchestration.ledger_handlers.book_order",
                        "ledger:tests.orchestration.ledger_handlers.count_order"}
    assert event.iid in {message_id for message_id, _ in inbox_rows(database)}
    assert skipped(caplog) == 2


async def test_without_the_option_every_delivery_is_handled(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    async with build({"ledger": ledger(database, inbox=False)}, entrypoints=False).hub as hub:
        event = OrderPlaced(order_id="o-2")
        await hub.execute(event)
        await hub.execute(OrderPlaced.model_validate(event.model_dump()))
    assert lines(database) == [("o-2", "book")] * 2 + [("o-2", "count")] * 2


async def test_a_handling_that_failed_is_not_recorded_and_the_next_delivery_handles_it(tmp_path: Path) -> None:
    from bollydog.errors import EventHandlersError

    database = tmp_path / "ledger.db"
    async with build({"ledger": ledger(database)}, entrypoints=False).hub as hub:
        event = Audited(order_id="flaky-1")
        with pytest.raises(EventHandlersError):
            await hub.execute(event)
        assert lines(database) == [] and inbox_rows(database) == []  # rolled back together
        await hub.execute(Audited.model_validate(event.model_dump()))
        await hub.execute(Audited.model_validate(event.model_dump()))
    assert lines(database) == [("flaky-1", "audit")]


async def test_two_deliveries_at_once_one_handles_and_the_other_is_rolled_back(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    async with build({"ledger": ledger(database)}, entrypoints=False).hub as hub:
        event = Audited(order_id="both", pause=0.2)  # both pass the check before either commits
        copy = Audited.model_validate(event.model_dump())
        await asyncio.gather(hub.execute(event), hub.execute(copy))
    assert lines(database) == [("both", "audit")]
    assert len(inbox_rows(database)) == 1


def test_inbox_retention_must_be_seconds_above_zero(tmp_path: Path) -> None:
    from bollydog.adapters.sqlalchemy import SqlAlchemyUnitOfWork

    with pytest.raises(ConfigError, match="inbox_retention: seconds above 0"):
        SqlAlchemyUnitOfWork(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", inbox=True, inbox_retention=0)


async def test_rows_past_the_retention_are_deleted(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    config = ledger(database)
    config["unit_of_work"]["inbox_retention"] = 60
    async with build({"ledger": config}, entrypoints=False).hub as hub:
        await hub.execute(OrderPlaced(order_id="old"))
    with sqlite3.connect(database) as db:
        db.execute("UPDATE bollydog_inbox SET handled = handled - 120")
    async with build({"ledger": config}, entrypoints=False).hub as hub:
        new_event = OrderPlaced(order_id="new")
        await hub.execute(new_event)  # the first Event after a start prunes
    # Only the second Event's rows are left, one per handler.
    assert len(inbox_rows(database)) == 2 and new_event.iid in {m for m, _ in inbox_rows(database)}


def skipped(caplog: pytest.LogCaptureFixture) -> int:
    return sum("(inbox): not handled again" in record.getMessage() for record in caplog.records)


async def test_an_outbox_event_published_twice_over_redis_is_handled_once(
    redis_url: str, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="bollydog.hub")
    orders_db, ledger_db = tmp_path / "orders.db", tmp_path / "ledger.db"
    config = {
        "orders": {
            "handlers": ["tests.orchestration.order_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork",
                "url": f"sqlite+aiosqlite:///{orders_db}",
                "metadata": "tests.orchestration.order_handlers.Base", "outbox": True,
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        },
        "ledger": ledger(ledger_db),
        "distribute": {"app": "bollydog.transport.redis.RedisTransport", "url": redis_url, "prefix": prefix,
                       "block_ms": 100},
    }
    async with build(config, exclude=["orders"], entrypoints=False).hub:
        async with build(config, exclude=["ledger"], entrypoints=False).hub as front:
            await front.execute(PlaceOrder(order_id="twice"))
            await wait_for(lambda: lines(ledger_db) == [("twice", "book"), ("twice", "count")])
            with sqlite3.connect(orders_db) as db:
                assert db.execute("SELECT count(*) FROM bollydog_outbox").fetchone()[0] == 0
        ((message_id, _), _) = inbox_rows(ledger_db)
        # As if the orders process had died after Redis took the Event and before its row was
        # deleted: the next start publishes it again, with the same id.
        async with build(config, exclude=["ledger"], entrypoints=False).hub as front:
            await front.transport.publish(OrderPlaced(order_id="twice", iid=message_id))
            await wait_for(lambda: skipped(caplog) == 2)  # delivered, and both handlers skipped it
    assert lines(ledger_db) == [("twice", "book"), ("twice", "count")]

"""The transactional outbox: an event bound for another process survives a crash after commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.errors import TransportError
from bollydog.service.app import HubService
from bollydog.testing import MemoryBroker
from tests.distribute.conftest import wait_for
from tests.orchestration import ship_handlers
from tests.orchestration.order_handlers import OrderPlaced, PlaceOrder

ROOT = Path(__file__).resolve().parents[2]


async def broken_on_order_placed(event: OrderPlaced) -> None:
    raise RuntimeError("a local handler fails too")


def sections(database: Path, transport: dict[str, Any], outbox: bool = True) -> dict[str, Any]:
    return {
        "orders": {
            "handlers": ["tests.orchestration.order_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork",
                "url": f"sqlite+aiosqlite:///{database}",
                "metadata": "tests.orchestration.order_handlers.Base",
                "outbox": outbox,
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        },
        "ship": {"handlers": ["tests.orchestration.ship_handlers"]},
        "distribute": transport,
    }


def outbox_rows(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT message_id FROM bollydog_outbox")]


def orders(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM outbox_test_orders").fetchone()[0])


@asynccontextmanager
async def process(config: dict[str, Any], hosts: list[str]) -> AsyncIterator[HubService]:
    hub = build(config, exclude=[k for k in ("orders", "ship") if k not in hosts], entrypoints=False).hub
    async with hub:
        yield hub


@pytest.fixture(autouse=True)
def clear_received() -> None:
    ship_handlers.received.clear()


async def test_events_for_other_processes_go_through_the_outbox_and_leave_it(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    config = sections(database, {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker()})
    async with process(config, ["ship"]), process(config, ["orders"]) as front:
        assert await front.execute(PlaceOrder(order_id="o-1")) == "o-1"
        await wait_for(lambda: len(ship_handlers.received) == 1)
        await wait_for(lambda: outbox_rows(database) == [])  # deleted once the transport took it
        with pytest.raises(ValueError):
            await front.execute(PlaceOrder(order_id="o-2", fail=True))
        assert outbox_rows(database) == [] and orders(database) == 1  # rolled back together
    assert len(ship_handlers.received) == 1


async def test_a_refused_publish_stays_in_the_outbox_and_the_next_start_publishes_it_once(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    config = sections(database, {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker()})
    async with process(config, ["orders"]) as front:

        async def down(event: Any) -> None:
            raise TransportError("the broker is down")

        front.transport.publish = down  # type: ignore[method-assign]
        await front.execute(PlaceOrder(order_id="o-1"))
        await front.drain(2)
        assert orders(database) == 1 and len(outbox_rows(database)) == 1  # committed, not relayed
    assert ship_handlers.received == []
    async with process(config, ["ship"]):
        for _ in range(2):  # a restart publishes it; the one after finds nothing left
            async with process(config, ["orders"]):
                await wait_for(lambda: len(ship_handlers.received) == 1)
                assert outbox_rows(database) == []
    assert len(ship_handlers.received) == 1


async def test_without_the_option_there_is_no_outbox(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    config = sections(database, {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker()}, outbox=False)
    async with process(config, ["ship"]), process(config, ["orders"]) as front:
        await front.execute(PlaceOrder(order_id="o-1"))
        await wait_for(lambda: len(ship_handlers.received) == 1)
    with sqlite3.connect(database) as db:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'bollydog_outbox'").fetchall()


async def test_an_event_survives_a_kill_between_commit_and_publish_redis(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    database = tmp_path / "orders.db"
    transport = {"app": "bollydog.transport.redis.RedisTransport", "url": redis_url, "prefix": prefix,
                 "block_ms": 200}
    config_path = tmp_path / "config.json"
    import json

    config_path.write_text(json.dumps(sections(database, transport)))
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.orchestration.outbox_crash", str(config_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert orders(database) == 1
    (message_id,) = outbox_rows(database)
    stream = f"{prefix}:stream:ship:normal"
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await raw.xlen(stream) == 0  # never published
        for _ in range(2):  # the restart publishes it once; the next start has nothing to do
            async with process(sections(database, transport), ["orders"]):
                assert outbox_rows(database) == []  # recovered while starting
                entries = await raw.xrange(stream)
                assert len(entries) == 1
        assert entries[0][1]["id"] == message_id  # the same message, its id kept for consumers
        assert json.loads(entries[0][1]["payload"])["order_id"] == "crash-1"
    finally:
        await raw.aclose()


async def test_a_start_without_a_transport_for_the_event_leaves_its_row(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    config = sections(database, {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker()})
    async with process(config, ["orders"]) as front:

        async def down(event: Any) -> None:
            raise TransportError("the broker is down")

        front.transport.publish = down  # type: ignore[method-assign]
        await front.execute(PlaceOrder(order_id="o-1"))
        await front.drain(2)
    (row,) = outbox_rows(database)
    monolith = {k: v for k, v in config.items() if k != "distribute"}
    async with process(monolith, ["orders", "ship"]):  # no transport: nobody to relay it to
        pass
    assert outbox_rows(database) == [row] and ship_handlers.received == []


async def test_local_handlers_failing_after_a_refused_publish_keep_the_row(tmp_path: Path) -> None:
    database = tmp_path / "orders.db"
    config = sections(database, {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker()})
    async with process(config, ["orders"]) as front:

        async def down(event: Any) -> None:
            raise TransportError("the broker is down")

        front.register(broken_on_order_placed, app=front.apps["orders"])
        front.transport.publish = down  # type: ignore[method-assign]
        await front.execute(PlaceOrder(order_id="o-1"))
        await front.drain(2)
    assert len(outbox_rows(database)) == 1

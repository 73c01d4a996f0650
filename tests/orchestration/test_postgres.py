"""Durable runs and the outbox on PostgreSQL (``BOLLYDOG_TEST_POSTGRES_URL``; a schema per test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bollydog.bootstrap import build
from tests.persistence.kits import PostgresSchema

ROOT = Path(__file__).resolve().parents[2]


def saga_config(schema: PostgresSchema) -> dict[str, Any]:
    return {
        "saga": {
            "handlers": ["tests.orchestration.saga_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork",
                "url": schema.url,
                "metadata": "tests.orchestration.saga_handlers.Base",
                "durable": True,
                **schema.engine_options(),
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        }
    }


async def query(schema: PostgresSchema, sql: str) -> list[Any]:
    engine = create_async_engine(schema.url, **schema.engine_options())
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("crash", ["before:3", "after:4"])
async def test_killed_mid_run_on_postgresql_each_effect_once(schema: PostgresSchema, tmp_path: Path, crash: str) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(saga_config(schema)))
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), "SAGA_CRASH": crash}
    killed = subprocess.run(
        [sys.executable, "-m", "tests.orchestration.saga_crash", str(config_path), "pg"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert await query(schema, "SELECT status FROM bollydog_runs") == [("running",)]
    async with build(saga_config(schema), entrypoints=False).hub as hub:
        assert await hub.drain(10)
    ((status, outcome),) = await query(schema, "SELECT status, outcome FROM bollydog_runs")
    assert status == "done" and json.loads(outcome) == {"key": "pg", "total": 150}
    rows = await query(schema, "SELECT step FROM saga_effects WHERE kind = 'do' ORDER BY id")
    assert rows == [(s,) for s in range(1, 6)]


async def test_outbox_on_postgresql_keeps_a_refused_event_until_a_restart_publishes_it(
    schema: PostgresSchema,
) -> None:
    from bollydog.errors import TransportError
    from bollydog.testing import MemoryBroker
    from tests.distribute.conftest import wait_for
    from tests.orchestration import ship_handlers
    from tests.orchestration.order_handlers import PlaceOrder

    ship_handlers.received.clear()
    broker = MemoryBroker()
    config = {
        "orders": {
            "handlers": ["tests.orchestration.order_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork", "url": schema.url,
                "metadata": "tests.orchestration.order_handlers.Base", "outbox": True, **schema.engine_options(),
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        },
        "ship": {"handlers": ["tests.orchestration.ship_handlers"]},
        "distribute": {"app": "bollydog.testing.MemoryTransport", "broker": broker},
    }
    async with build(config, exclude=["ship"], entrypoints=False).hub as front:

        async def down(event: Any) -> None:
            raise TransportError("the broker is down")

        front.transport.publish = down  # type: ignore[method-assign]
        await front.execute(PlaceOrder(order_id="pg-1"))
        await front.drain(2)
    assert len(await query(schema, "SELECT message_id FROM bollydog_outbox")) == 1
    async with build(config, exclude=["orders"], entrypoints=False).hub:
        async with build(config, exclude=["ship"], entrypoints=False).hub:
            await wait_for(lambda: len(ship_handlers.received) == 1)
    assert await query(schema, "SELECT message_id FROM bollydog_outbox") == []
    assert len(ship_handlers.received) == 1

"""Fixtures of the state store contract: one hub with a StateService per adapter.

PostgreSQL runs when ``BOLLYDOG_TEST_POSTGRES_URL`` is set, in a schema of its own per test
(the persistence suite's kit helpers), and is skipped otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bollydog.adapters.sqlalchemy import SqlAlchemyUnitOfWork
from bollydog.service.app import HubService
from bollydog.state.service import StateService
from bollydog.state.store import MemoryStateProtocol, StateProtocol
from tests.persistence.kits import PostgresSchema, postgres_url

ADAPTERS = ["memory", "sqlite", "postgresql"]


async def make_store(name: str, tmp_path: Any, **options: Any) -> tuple[StateProtocol, list[Any]]:
    from bollydog.state.sql import SqlStateProtocol

    if name == "memory":
        options = {k: v for k, v in options.items() if k != "compact_every"}  # compacts on commit
        return MemoryStateProtocol(**options), []
    if name == "sqlite":
        uow = SqlAlchemyUnitOfWork(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}", connect_timeout=5)
        return SqlStateProtocol(uow, **options), []
    schema = PostgresSchema(postgres_url())
    await schema.create()
    uow = SqlAlchemyUnitOfWork(postgres_url(), connect_timeout=5, **schema.engine_options())
    return SqlStateProtocol(uow, **options), [schema.drop]


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def hub(adapter: str, tmp_path: Any, store_options: dict[str, Any]) -> AsyncIterator[HubService]:
    protocol, cleanups = await make_store(adapter, tmp_path, **store_options)
    app = StateService(domain="state", protocol=protocol)
    try:
        async with HubService(apps=[app]) as running:
            yield running
    finally:
        for cleanup in cleanups:
            await cleanup()

"""Test kits: one adapter under test each, ready to be given to an AppService.

PostgreSQL runs when ``BOLLYDOG_TEST_POSTGRES_URL`` is set (``.ci/start-postgres.sh`` starts
one and prints the URL); otherwise its cases are skipped, unless ``BOLLYDOG_REQUIRE_SERVICES=1``
makes a missing or unreachable server a failure. Each PostgreSQL test gets a schema of its own.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bollydog.adapters.memory import MemoryProtocol
from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol, SqlAlchemyUnitOfWork
from bollydog.models.protocol import Protocol
from tests.persistence.models_contract import Base, MemItem, SqlItem

HANDLERS = "tests.persistence.handlers_contract"
POSTGRES_ENV = "BOLLYDOG_TEST_POSTGRES_URL"
SKIP_REASON = f"set {POSTGRES_ENV}; .ci/run starts PostgreSQL (.ci/start-postgres.sh)"

_unreachable: dict[str, str] = {}  # url -> why, so a dead server costs one attempt per run


def postgres_url() -> str:
    """The test server's URL, or skip (fail under BOLLYDOG_REQUIRE_SERVICES=1)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    required = os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1"
    if not url:
        if required:
            pytest.fail(f"BOLLYDOG_REQUIRE_SERVICES=1 but {POSTGRES_ENV} is not set", pytrace=False)
        pytest.skip(SKIP_REASON)
    if url in _unreachable:
        _service_unavailable(_unreachable[url])
    return url


def _service_unavailable(why: str) -> None:
    if os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1":
        pytest.fail(f"PostgreSQL required but unreachable: {why}", pytrace=False)
    pytest.skip(f"PostgreSQL at {POSTGRES_ENV} unreachable ({why}); start it: .ci/start-postgres.sh")


@dataclass
class Kit:
    """One adapter under test: its protocol (with ``protocol.item`` set) and how to inspect it."""

    name: str
    protocol: Protocol
    cleanups: list[Any] = field(default_factory=list)

    @property
    def item(self) -> type:
        return self.protocol.item  # type: ignore[attr-defined]

    def open_connections(self) -> int:
        uow = self.protocol.unit_of_work
        engine = getattr(uow, "engine", None)
        return engine.pool.checkedout() if engine is not None else 0


class PostgresSchema:
    """A throwaway schema: the kit's connections put it first on their search_path."""

    def __init__(self, url: str) -> None:
        self.url, self.name = url, f"bd_test_{secrets.token_hex(6)}"

    async def create(self) -> None:
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        except Exception as exc:
            _unreachable[self.url] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            _service_unavailable(_unreachable[self.url])
        finally:
            await engine.dispose()

    async def drop(self) -> None:
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        finally:
            await engine.dispose()

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"server_settings": {"search_path": self.name}}}


async def make_kit(name: str, tmp_path: Any, **uow_options: Any) -> Kit:
    """A kit for adapter ``name``; the caller connects it (usually by starting a hub)."""
    if name == "memory":
        protocol: Protocol = MemoryProtocol()
        protocol.item = MemItem  # type: ignore[attr-defined]
        return Kit(name, protocol)
    if name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}"
        uow = SqlAlchemyUnitOfWork(url, metadata=Base, connect_timeout=5, **uow_options)
        protocol = SqlAlchemyProtocol(uow)
        protocol.item = SqlItem  # type: ignore[attr-defined]
        return Kit(name, protocol)
    if name == "postgresql":
        url = postgres_url()
        schema = PostgresSchema(url)
        await schema.create()
        uow = SqlAlchemyUnitOfWork(
            url, metadata=Base, connect_timeout=5, **schema.engine_options(), **uow_options
        )
        protocol = SqlAlchemyProtocol(uow)
        protocol.item = SqlItem  # type: ignore[attr-defined]
        return Kit(name, protocol, cleanups=[schema.drop])
    raise ValueError(name)


def mark_unreachable(url: str, why: str) -> None:
    """Remember that ``url`` did not answer, then skip (or fail) the current test."""
    _unreachable[url] = why
    _service_unavailable(why)

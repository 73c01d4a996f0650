"""Handlers for the SQLAlchemy-only tests (discovered as ``tests.persistence.handlers_sql``)."""

from __future__ import annotations

from sqlalchemy import text

from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol
from bollydog.models.base import Command
from tests.persistence.models_contract import SqlItem


class AddThenSleepInDatabase(Command):
    item_id: str
    seconds: float


class AddDuplicate(Command):
    item_id: str


async def add_then_sleep_in_database(command: AddThenSleepInDatabase, protocol: SqlAlchemyProtocol) -> None:
    """Killed by its timeout while PostgreSQL is busy with its statement."""
    await protocol.add(SqlItem(iid=command.item_id, name="slow"))
    async with protocol.session() as session:
        await session.execute(text("SELECT pg_sleep(:s)"), {"s": command.seconds})


async def add_duplicate(command: AddDuplicate, protocol: SqlAlchemyProtocol) -> None:
    await protocol.add(SqlItem(iid=command.item_id + "-other", name="other"))
    await protocol.add(SqlItem(iid=command.item_id, name="dup"))

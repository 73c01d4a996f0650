"""The state store in SQL (SQLite, PostgreSQL) through :class:`SqlAlchemyUnitOfWork`.

Three tables, created on connect: ``bollydog_state_objects`` (one row per object),
``bollydog_state_labels`` (one row per label, indexed by name and value, so a selector is
answered from the index instead of scanning the objects) and ``bollydog_state_changes`` (the
change log; its auto-incremented key is the resource version, so versions grow across every
process sharing the database).

A write is conditional on the version it read (``UPDATE ... WHERE version = :read``; an insert
collides on the primary key), so two writers of one object, in this process or another, cannot
both win: the second gets :class:`~bollydog.state.objects.ConflictError`.

Config::

    state:
      app: !module bollydog.state.service.StateService
      unit_of_work:
        module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork
        url: sqlite+aiosqlite:///${BOLLYDOG_CONFIG_DIR}/state.db
      protocol:
        module: !module bollydog.state.sql.SqlStateProtocol
"""

from __future__ import annotations

import builtins
from typing import Any

# First: without the sql extra it raises the MissingDependencyError with the install line.
from bollydog.adapters.sqlalchemy import SqlAlchemyUnitOfWork  # isort: skip

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from bollydog.errors import ConfigError
from bollydog.models.protocol import UnitOfWork
from bollydog.state.objects import Change, ChangeType, ConflictError, StateObject
from bollydog.state.selectors import LabelSelector, Requirement
from bollydog.state.store import StateProtocol

__all__ = ["SqlStateProtocol", "metadata"]

metadata = sa.MetaData()
_Version = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid alias

objects = sa.Table(
    "bollydog_state_objects", metadata,
    sa.Column("kind", sa.String(253), primary_key=True),
    sa.Column("key", sa.String(253), primary_key=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("version", _Version, nullable=False),
)
labels = sa.Table(
    "bollydog_state_labels", metadata,
    sa.Column("kind", sa.String(253), primary_key=True),
    sa.Column("key", sa.String(253), primary_key=True),
    sa.Column("name", sa.String(317), primary_key=True),
    sa.Column("value", sa.String(63), nullable=False),
    sa.ForeignKeyConstraint(["kind", "key"], ["bollydog_state_objects.kind", "bollydog_state_objects.key"],
                            ondelete="CASCADE"),
    sa.Index("bollydog_state_labels_name_value", "name", "value", "kind"),
)
changes = sa.Table(
    "bollydog_state_changes", metadata,
    # SQLite AUTOINCREMENT: a version is never handed out twice, even after compaction.
    sa.Column("version", _Version, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(8), nullable=False),
    sa.Column("kind", sa.String(253), nullable=False),
    sa.Column("key", sa.String(253), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sqlite_autoincrement=True,
)
meta = sa.Table(
    "bollydog_state_meta", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
_COMPACTED = "compacted"


class SqlStateProtocol(StateProtocol):
    """The state store in the database of a :class:`SqlAlchemyUnitOfWork`.

    ``history``: changes kept for watches to resume from. ``compact_every``: every how many
    writes the log is trimmed to ``history`` (trimming on every write would serialise writers
    on the watermark row).
    """

    unit_of_work: SqlAlchemyUnitOfWork

    def __init__(self, unit_of_work: UnitOfWork | None = None, *, compact_every: int = 100, **options: Any) -> None:
        if not isinstance(unit_of_work, SqlAlchemyUnitOfWork):
            raise ConfigError(
                "SqlStateProtocol needs a unit_of_work section with "
                "module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork and a url"
            )
        super().__init__(unit_of_work, **options)
        self.compact_every = max(1, int(compact_every))

    async def connect(self) -> None:
        await super().connect()
        engine = self.unit_of_work.engine
        assert engine is not None  # connect() raised otherwise
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def _get(self, tx: AsyncSession, kind: str, key: str) -> StateObject | None:
        row = (await tx.execute(
            sa.select(objects).where(objects.c.kind == kind, objects.c.key == key)
        )).mappings().first()
        return _object(row) if row is not None else None

    async def _save(self, tx: AsyncSession, obj: StateObject, previous: int, change: ChangeType) -> int:
        version = int((await tx.execute(
            changes.insert().values(type=change, kind=obj.kind, key=obj.key, labels=obj.labels, spec=obj.spec)
            .returning(changes.c.version)
        )).scalar_one())
        where = (objects.c.kind == obj.kind, objects.c.key == obj.key)
        if change == "DELETED":
            await tx.execute(labels.delete().where(labels.c.kind == obj.kind, labels.c.key == obj.key))
            done = await tx.execute(objects.delete().where(*where, objects.c.version == previous))
            if _rowcount(done) != 1:
                raise ConflictError(obj.kind, obj.key, previous, await self._stored_version(tx, obj))
        elif previous == 0:
            try:
                async with tx.begin_nested():  # a collision must not abort the whole transaction
                    await tx.execute(objects.insert().values(
                        kind=obj.kind, key=obj.key, labels=obj.labels, spec=obj.spec, version=version
                    ))
            except sa_exc.IntegrityError:
                raise ConflictError(obj.kind, obj.key, 0, await self._stored_version(tx, obj)) from None
        else:
            done = await tx.execute(
                objects.update().where(*where, objects.c.version == previous)
                .values(labels=obj.labels, spec=obj.spec, version=version)
            )
            if _rowcount(done) != 1:
                raise ConflictError(obj.kind, obj.key, previous, await self._stored_version(tx, obj))
            await tx.execute(labels.delete().where(labels.c.kind == obj.kind, labels.c.key == obj.key))
        if change != "DELETED" and obj.labels:
            await tx.execute(labels.insert(), [
                {"kind": obj.kind, "key": obj.key, "name": name, "value": value}
                for name, value in obj.labels.items()
            ])
        if version % self.compact_every == 0:
            await self._compact(tx, version - self.history)
        return version

    async def _stored_version(self, tx: AsyncSession, obj: StateObject) -> int:
        stored = await self._get(tx, obj.kind, obj.key)
        return stored.version if stored is not None else 0

    async def _compact(self, tx: AsyncSession, through: int) -> None:
        if through <= 0:
            return
        await tx.execute(changes.delete().where(changes.c.version <= through))
        updated = await tx.execute(
            meta.update().where(meta.c.name == _COMPACTED, meta.c.value < through).values(value=through)
        )
        if _rowcount(updated) == 0:
            exists = (await tx.execute(sa.select(meta.c.value).where(meta.c.name == _COMPACTED))).first()
            if exists is None:
                await tx.execute(meta.insert().values(name=_COMPACTED, value=through))

    async def _list(self, tx: AsyncSession, kind: str | None, selector: LabelSelector) -> builtins.list[StateObject]:
        stmt = sa.select(objects).order_by(objects.c.kind, objects.c.key)
        if kind is not None:
            stmt = stmt.where(objects.c.kind == kind)
        stmt = stmt.where(*(_condition(r) for r in selector.requirements))
        return [_object(row) for row in (await tx.execute(stmt)).mappings()]

    async def _changes(self, tx: AsyncSession, since: int) -> tuple[builtins.list[Change], int, int]:
        rows = (await tx.execute(
            sa.select(changes).where(changes.c.version > since).order_by(changes.c.version)
        )).mappings().all()
        compacted = (await tx.execute(sa.select(meta.c.value).where(meta.c.name == _COMPACTED))).scalar()
        latest = (await tx.execute(sa.select(sa.func.max(changes.c.version)))).scalar()
        found = [
            Change(type=row["type"], object=StateObject(
                kind=row["kind"], key=row["key"], labels=row["labels"], spec=row["spec"], version=row["version"]
            ))
            for row in rows
        ]
        return found, int(compacted or 0), int(latest or compacted or 0)


def _rowcount(result: Any) -> int:
    # Results of UPDATE/DELETE are CursorResults; the async session types them as Result.
    count: int = result.rowcount
    return count


def _object(row: Any) -> StateObject:
    return StateObject(kind=row["kind"], key=row["key"], labels=row["labels"], spec=row["spec"], version=row["version"])


def _condition(req: Requirement) -> Any:
    """One requirement as an (indexed) EXISTS over the labels table."""
    has = sa.select(labels.c.name).where(
        labels.c.kind == objects.c.kind, labels.c.key == objects.c.key, labels.c.name == req.key
    )
    if req.operator in ("=", "in", "!=", "notin"):
        has = has.where(labels.c.value.in_(sorted(req.values)))
    found = has.exists()
    return found if req.operator in ("=", "in", "exists") else ~found

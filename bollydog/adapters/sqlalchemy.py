"""SQL persistence on SQLAlchemy 2 (asyncio): any database with an async driver.

:class:`SqlAlchemyUnitOfWork` owns the engine. Each handler execution that touches the
protocol gets one :class:`~sqlalchemy.ext.asyncio.AsyncSession` (a connection is taken from the
pool at its first statement), committed when the handler returns, rolled back when it raises
or times out, and closed either way, so the connection goes back to the pool.

:class:`SqlAlchemyProtocol` is the CRUD surface over ORM-mapped classes (``DeclarativeBase`` /
``Mapped``). Sessions use ``expire_on_commit=False``: what a call returns stays readable after
the handler's transaction ended. Relationships that were not loaded cannot be loaded then;
declare them ``lazy="selectin"`` or query with loader options through :meth:`session`.

ORM classes that mix in :class:`DomainEvents` can ``raise_event()``; those events are
published after the commit, like those of :class:`~bollydog.models.base.BaseDomain`.

One module (~470 lines): the unit of work and the protocol share the engine and session rules.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from bollydog.errors import BollydogError, ConfigError, MissingDependencyError, RunLeaseLostError
from bollydog.models.base import Event
from bollydog.durable.runner import Claim, current_claim
from bollydog.durable.store import RunRecord, Status, StepRecord
from bollydog.models.protocol import DuplicateDelivery, Protocol, TransactionScope, UnitOfWork, _ScopeContext
from bollydog.outbox.relay import Outbox, OutboxRow

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import Mapper
    from sqlalchemy.pool import SingletonThreadPool, StaticPool
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    if (_exc.name or "").split(".")[0] == "sqlalchemy":
        raise MissingDependencyError("SQL persistence", "sql", "sqlalchemy") from None
    raise
try:
    import greenlet  # noqa: F401  (SQLAlchemy's asyncio layer runs on it)
except ImportError:  # pragma: no cover
    raise MissingDependencyError("SQL persistence", "sql", "greenlet") from None

log = logging.getLogger("bollydog.adapters.sqlalchemy")

T = TypeVar("T")
_SELECT_1 = sa.text("SELECT 1")
_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class ModelError(BollydogError, ValueError):
    """A class is not ORM-mapped, or a query or update names an attribute it does not map."""


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, safe to log and show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


class DomainEvents:
    """Mixin for ORM classes: ``raise_event()`` events are published after the commit.

    The events live in the instance ``__dict__``, not in a mapped column.
    """

    def raise_event(self, event: Event) -> None:
        self.__dict__.setdefault("_bollydog_events", []).append(event)

    def collect_events(self) -> list[Event]:
        events: list[Event] = self.__dict__.pop("_bollydog_events", [])
        return events


class SqlAlchemyUnitOfWork(UnitOfWork):
    """An async engine, and one session per handler execution.

    ``url``: a SQLAlchemy URL with an async driver (``sqlite+aiosqlite:///app.db``,
    ``postgresql+asyncpg://user:pw@host/db``). ``metadata``: a ``MetaData``, a
    ``DeclarativeBase`` subclass, a ``!module`` reference or dotted path to either, or a list of
    them; with ``create_tables`` its tables are created on connect (existing ones are kept).
    ``connect_timeout``: seconds the start-up connectivity check may take. Pool options are
    passed to ``create_async_engine`` when set, and so are any other keyword options
    (``isolation_level``, ``execution_options``, ...).

    A single-connection database (``sqlite+aiosqlite://`` in memory) runs one transaction at a
    time; a nested command that needs its own transaction while its parent's is open is an
    error there: use a file database.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        metadata: Any = None,
        create_tables: bool = True,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
        pool_recycle: int | None = None,
        pool_pre_ping: bool | None = None,
        connect_args: dict[str, Any] | None = None,
        connect_timeout: float = 10.0,
        outbox: bool = False,
        durable: bool = False,
        inbox: bool = False,
        inbox_retention: float = 7 * 24 * 3600.0,
        **engine_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(inbox_retention, (int, float)) or inbox_retention <= 0:
            raise ConfigError(f"unit_of_work.inbox_retention: seconds above 0, got {inbox_retention!r}")
        #: Events each handler handled (``inbox: true``): delivered again, not handled again.
        self.inbox: SqlInbox | None = SqlInbox(self, float(inbox_retention)) if inbox else None
        #: The transactional outbox (``outbox: true``; bollydog.outbox), or None.
        self.outbox: Outbox | None = Outbox(_SqlOutboxStore(self)) if outbox else None
        #: Where durable handlers keep their runs (``durable: true``; bollydog.durable), or None.
        self.runs: SqlRunStore | None = SqlRunStore(self) if durable else None
        if not url:
            raise ConfigError("unit_of_work.url: a database URL is required")
        try:
            self.url: URL = make_url(url)
        except (sa_exc.ArgumentError, ValueError):
            raise ConfigError(
                f"unit_of_work.url: cannot parse database URL {mask_url(url)!r}; expected "
                "dialect+driver://user:password@host:port/database"
            ) from None
        self.safe_url = mask_url(self.url)
        self.metadata = _resolve_metadata(metadata)
        self.create_tables = create_tables
        self.connect_timeout = connect_timeout
        options: dict[str, Any] = {"echo": echo, **engine_options}
        for key, value in (
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout),
            ("pool_recycle", pool_recycle),
            ("pool_pre_ping", pool_pre_ping),
            ("connect_args", connect_args),
        ):
            if value is not None:
                options[key] = value
        self.engine_options = options
        self.engine: AsyncEngine | None = None
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None
        # Single-connection pools: one transaction at a time (see the class docstring).
        self._serial: asyncio.Lock | None = None
        self._serial_owner: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url}>"

    # -- lifecycle --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Create the engine, check that the database answers, create the tables."""
        if self.engine is not None:
            return
        engine = self._create_engine()
        if self.runs is not None and isinstance(engine.pool, (StaticPool, SingletonThreadPool)):
            await _dispose_quietly(engine)
            raise ConfigError(
                f"unit_of_work: durable runs need a database that outlives the process, and {self.safe_url} "
                "is in memory (one connection, gone at exit): use a file (sqlite+aiosqlite:///runs.db) "
                "or a server database"
            )
        try:
            async with asyncio.timeout(self.connect_timeout):
                async with engine.connect() as conn:
                    await conn.execute(_SELECT_1)
        except Exception as exc:
            await _dispose_quietly(engine)
            if isinstance(exc, TimeoutError):
                problem = f"no answer within {self.connect_timeout}s (connect_timeout)"
            else:
                problem = self._describe(exc)
            raise ConfigError(f"cannot connect to database {self.safe_url}: {problem}") from None
        # bollydog's own tables (outbox, durable runs) are created whatever create_tables says.
        own = [m for m, on in ((_OUTBOX_METADATA, self.outbox), (_RUNS_METADATA, self.runs),
                               (_INBOX_METADATA, self.inbox)) if on is not None]
        metadatas = [*(self.metadata if self.create_tables else []), *own]
        if metadatas:
            try:
                async with engine.begin() as conn:
                    for metadata in metadatas:
                        await conn.run_sync(metadata.create_all)
                    if self.runs is not None:
                        await conn.run_sync(_add_run_columns)
            except Exception as exc:
                await _dispose_quietly(engine)
                raise ConfigError(
                    f"cannot create tables in database {self.safe_url}: {self._describe(exc)}"
                ) from None
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        if isinstance(engine.pool, (StaticPool, SingletonThreadPool)):
            self._serial = asyncio.Lock()

    def _create_engine(self) -> AsyncEngine:
        try:
            return create_async_engine(self.url, **self.engine_options)
        except ImportError as exc:
            driver = exc.name or self.url.drivername
            raise ConfigError(
                f"cannot use database {self.safe_url}: its driver module '{driver}' is not "
                "installed (for PostgreSQL: pip install 'bollydog[postgres]'; for SQLite: "
                "pip install 'bollydog[sql]')"
            ) from None
        except sa_exc.NoSuchModuleError:
            raise ConfigError(
                f"cannot use database {self.safe_url}: SQLAlchemy knows no dialect/driver "
                f"'{self.url.drivername}'"
            ) from None
        except sa_exc.InvalidRequestError as exc:  # a sync-only driver
            raise ConfigError(
                f"cannot use database {self.safe_url}: {self._hide(str(exc))} Use an async "
                "driver, e.g. postgresql+asyncpg:// or sqlite+aiosqlite://"
            ) from None
        except (TypeError, sa_exc.ArgumentError) as exc:
            raise ConfigError(
                f"invalid engine option for database {self.safe_url}: {self._hide(str(exc))}"
            ) from None

    async def disconnect(self) -> None:
        """Dispose of the engine: every pooled connection is closed."""
        if self.outbox is not None:
            await self.outbox.flush()
        if self.inbox is not None:
            await self.inbox.stop()
        engine, self.engine, self.sessionmaker = self.engine, None, None
        if engine is not None:
            await engine.dispose()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ImportError):
            return f"driver module '{exc.name}' is not installed"
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            exc = exc.orig
        text = str(exc).split("\n(Background on this error", 1)[0].strip()
        return self._hide(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _hide(self, text: str) -> str:
        password = self.url.password
        if password:
            text = text.replace(str(password), "***")
        return _PASSWORD_IN_URL.sub(r"\1***@", text)

    # -- transactions -----------------------------------------------------------------------------

    def scope(self) -> _ScopeContext:
        """One handler execution; with an outbox, its events bound for other processes are
        written in its transaction before the commit; with durable runs, so is the step of the
        durable run that dispatched it."""
        if self.outbox is None and self.runs is None:
            return super().scope()
        return _SqlScope(self, self.outbox)

    async def begin(self) -> AsyncSession:
        """A new session with its transaction begun (no connection is taken until first use)."""
        if self.sessionmaker is None:
            raise RuntimeError(
                f"{self!r} is not connected: start its app (async with hub) before using it"
            )
        if self._serial is not None:
            await self._acquire_serial(self._serial)
        session = self.sessionmaker()
        if self._serial is not None:
            session.info["bollydog_serial"] = True
        session.sync_session.begin()
        return session

    async def commit(self, transaction: AsyncSession) -> None:
        try:
            await transaction.commit()
        finally:
            await self._close(transaction)

    async def rollback(self, transaction: AsyncSession) -> None:
        # Never raises: the handler's own exception is what the caller must see.
        try:
            await transaction.rollback()
        except Exception as exc:
            log.warning("rollback failed on %s, discarding the connection: %s", self.safe_url, exc)
            await _invalidate_quietly(transaction)
        finally:
            await self._close(transaction)

    async def _close(self, session: AsyncSession) -> None:
        try:
            await session.close()
        except Exception as exc:
            log.warning("closing a session of %s failed, discarding the connection: %s", self.safe_url, exc)
            await _invalidate_quietly(session)
        finally:
            if session.info.pop("bollydog_serial", False) and self._serial is not None:
                self._serial_owner = None
                self._serial.release()

    async def _acquire_serial(self, serial: asyncio.Lock) -> None:
        current = asyncio.current_task()
        if self._serial_owner is not None and self._serial_owner is current:
            raise ConfigError(
                f"{self.safe_url} has a single connection: a nested command cannot start its own "
                "transaction while its parent's is open; use a file database "
                "(sqlite+aiosqlite:///path.db) or touch the protocol after the nested command"
            )
        await serial.acquire()
        self._serial_owner = current


async def _dispose_quietly(engine: AsyncEngine) -> None:
    try:
        await engine.dispose()
    except Exception:  # pragma: no cover - best effort after a failed start
        pass


async def _invalidate_quietly(session: AsyncSession) -> None:
    try:
        await session.invalidate()
    except Exception:  # pragma: no cover - best effort
        pass


def _resolve_metadata(value: Any) -> list[sa.MetaData]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [md for item in value for md in _resolve_metadata(item)]
    original = value
    if isinstance(value, str):
        from bollydog.config import ModuleRef

        value = ModuleRef(value, key="unit_of_work.metadata").resolve()
    elif callable(getattr(value, "resolve", None)) and hasattr(value, "path"):  # a ModuleRef
        value = value.resolve()
    if isinstance(value, sa.MetaData):
        return [value]
    metadata = getattr(value, "metadata", None)
    if isinstance(metadata, sa.MetaData):
        return [metadata]
    raise ConfigError(
        f"unit_of_work.metadata: {original!r} is not a MetaData or a DeclarativeBase class"
    )


M = TypeVar("M")


class SqlAlchemyProtocol(Protocol):
    """CRUD over ORM-mapped classes through :class:`SqlAlchemyUnitOfWork`.

    Inside a handler every call joins the handler's transaction. Outside one (a script, a
    test) each call runs in a transaction of its own, committed at once. Writes are flushed
    when called, so database errors (a duplicate key) surface in the handler, and generated
    keys and server defaults are loaded on the returned objects.

    Without a ``unit_of_work``, the keyword options (``url``, ``metadata``, ...) create one.
    """

    unit_of_work: SqlAlchemyUnitOfWork
    unit_of_work_class = SqlAlchemyUnitOfWork

    def __init__(self, unit_of_work: UnitOfWork | None = None, **options: Any) -> None:
        if unit_of_work is None:
            # Shorthand: the protocol section alone, with the unit of work's options.
            if "url" not in options:
                raise ConfigError(
                    "SqlAlchemyProtocol needs a unit_of_work section "
                    "(SqlAlchemyUnitOfWork) or a 'url' option"
                )
            unit_of_work, options = SqlAlchemyUnitOfWork(**options), {}
        if not isinstance(unit_of_work, SqlAlchemyUnitOfWork):
            raise TypeError(
                f"SqlAlchemyProtocol needs a SqlAlchemyUnitOfWork, got {type(unit_of_work).__name__}"
            )
        super().__init__(unit_of_work, **options)

    # -- sessions ---------------------------------------------------------------------------------

    async def _run(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self.unit_of_work.operation() as session:
            return await operation(session, *args)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The handler's session, for queries of your own (``select``, loader options...).

        Outside a handler: a session of its own, committed when the block ends without error.
        Do not commit or close it yourself; the unit of work does.
        """
        async with self.unit_of_work.operation() as session:
            yield session

    # -- CRUD -------------------------------------------------------------------------------------

    async def add(self, obj: M) -> M:
        """Insert ``obj``; its events are published after the commit."""
        _mapper(type(obj))
        return await self._run(self._add, [obj])

    async def add_all(self, objs: Iterable[M]) -> list[M]:
        objs = list(objs)
        for obj in objs:
            _mapper(type(obj))
        if objs:
            await self._run(self._add, objs)
        return objs

    async def _add(self, session: AsyncSession, objs: list[Any]) -> Any:
        session.add_all(objs)
        await session.flush()
        for obj in objs:
            await _load_expired(session, obj)
            self.unit_of_work.saw(obj)
        return objs[0]

    async def get(self, model: type[M], iid: Any) -> M | None:
        """The object with primary key ``iid`` (a tuple for composite keys), or None."""
        _mapper(model)
        return await self._run(_get, model, iid)

    async def list(self, model: type[M], limit: int | None = None, offset: int = 0) -> list[M]:
        """Objects ordered by primary key, ``offset`` skipped, at most ``limit``."""
        mapper = _mapper(model)
        stmt = sa.select(model).order_by(*mapper.primary_key)
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return await self._run(_all, stmt)

    # ``list`` in the class body below is the method above: the builtin is spelled out.
    async def search(self, model: type[M], **filters: Any) -> builtins.list[M]:
        """Objects whose attributes equal every ``filters`` value (``None`` matches NULL)."""
        mapper = _mapper(model)
        columns = mapper.columns
        conditions = []
        for name, value in filters.items():
            if name not in columns:
                raise ModelError(
                    f"{model.__name__} has no mapped column '{name}' to search by "
                    f"(columns: {', '.join(columns.keys())})"
                )
            conditions.append(getattr(model, name) == value)
        stmt = sa.select(model).where(*conditions).order_by(*mapper.primary_key)
        return await self._run(_all, stmt)

    async def update(self, model: type[M], iid: Any, **values: Any) -> M | None:
        """Set ``values`` on the object with primary key ``iid``; None if there is none."""
        mapper = _mapper(model)
        unknown = [name for name in values if name not in mapper.attrs]
        if unknown:
            raise ModelError(
                f"{model.__name__} has no mapped attribute {', '.join(map(repr, unknown))} to update"
            )
        return await self._run(self._update, model, iid, values)

    async def _update(self, session: AsyncSession, model: type[M], iid: Any, values: dict[str, Any]) -> M | None:
        obj = await session.get(model, iid)
        if obj is None:
            return None
        for name, value in values.items():
            setattr(obj, name, value)
        await session.flush()
        await _load_expired(session, obj)
        self.unit_of_work.saw(obj)
        return obj

    async def delete(self, model: type[M], iid: Any) -> bool:
        """Delete the object with primary key ``iid``; False if there was none."""
        _mapper(model)
        return await self._run(_delete, model, iid)


def _mapper(model: object) -> Mapper[Any]:
    mapper = sa.inspect(model, raiseerr=False) if inspect.isclass(model) else None
    if not isinstance(mapper, Mapper):
        name = model.__name__ if isinstance(model, type) else type(model).__name__
        raise ModelError(f"{name} is not an ORM-mapped class (subclass your DeclarativeBase)")
    return mapper


async def _load_expired(session: AsyncSession, obj: Any) -> None:
    # Server-generated values are expired by the flush; load them now, while a session exists.
    expired = sa.inspect(obj).expired_attributes
    if expired:
        await session.refresh(obj, attribute_names=list(expired))


async def _get(session: AsyncSession, model: type[M], iid: Any) -> M | None:
    return await session.get(model, iid)


async def _all(session: AsyncSession, stmt: Any) -> list[Any]:
    return list((await session.scalars(stmt)).all())


async def _delete(session: AsyncSession, model: type[M], iid: Any) -> bool:
    obj = await session.get(model, iid)
    if obj is None:
        return False
    await session.delete(obj)
    await session.flush()
    return True


# -- the transactional outbox (bollydog.outbox) ------------------------------------------------------

_OUTBOX_METADATA = sa.MetaData()
_OUTBOX = sa.Table(
    "bollydog_outbox",
    _OUTBOX_METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(32), nullable=False, unique=True),
    sa.Column("fields", sa.Text, nullable=False),
)


class _OwnTable:
    """One of bollydog's own tables (outbox, inbox, durable runs) in a
    :class:`SqlAlchemyUnitOfWork`'s database."""

    def __init__(self, unit_of_work: SqlAlchemyUnitOfWork) -> None:
        self.unit_of_work = unit_of_work

    def _engine(self) -> AsyncEngine:
        engine = self.unit_of_work.engine
        if engine is None:
            raise RuntimeError(f"{self.unit_of_work!r} is not connected: start its app first")
        return engine


class _SqlOutboxStore(_OwnTable):
    """The ``bollydog_outbox`` table of a :class:`SqlAlchemyUnitOfWork`."""

    async def write(self, transaction: Any, rows: Iterable[OutboxRow]) -> None:
        session: AsyncSession = transaction
        await session.execute(sa.insert(_OUTBOX), [{"message_id": r.message_id, "fields": r.fields} for r in rows])

    async def pending(self) -> builtins.list[OutboxRow]:
        async with self._engine().connect() as conn:
            result = await conn.execute(sa.select(_OUTBOX.c.message_id, _OUTBOX.c.fields).order_by(_OUTBOX.c.seq))
            return [OutboxRow(message_id, fields) for message_id, fields in result]

    async def remove(self, message_ids: Iterable[str]) -> None:
        async with self._engine().begin() as conn:
            await conn.execute(sa.delete(_OUTBOX).where(_OUTBOX.c.message_id.in_(builtins.list(message_ids))))


_INBOX_METADATA = sa.MetaData()
_INBOX = sa.Table(
    "bollydog_inbox",
    _INBOX_METADATA,
    sa.Column("message_id", sa.String(32), primary_key=True),
    sa.Column("handler", sa.String(400), primary_key=True),
    sa.Column("handled", sa.Float, nullable=False, index=True),
)


class SqlInbox(_OwnTable):
    """The ``bollydog_inbox`` table of a :class:`SqlAlchemyUnitOfWork`
    (:class:`~bollydog.models.protocol.Inbox`): one row per Event and handler, written in the
    handler's transaction; rows older than ``retention`` seconds are deleted now and then."""

    def __init__(self, unit_of_work: SqlAlchemyUnitOfWork, retention: float) -> None:
        super().__init__(unit_of_work)
        self.retention = retention
        self._next_prune = 0.0
        self._pruning: asyncio.Task[None] | None = None

    async def seen(self, message_id: str, handler: str) -> bool:
        if time.monotonic() >= self._next_prune and self._pruning is None:
            self._next_prune = time.monotonic() + min(self.retention / 10, 3600.0)
            self._pruning = asyncio.create_task(self._prune(), name="bollydog-inbox-prune")
        async with self._engine().connect() as conn:
            found = await conn.execute(
                sa.select(_INBOX.c.handled).where(_INBOX.c.message_id == message_id, _INBOX.c.handler == handler)
            )
            return found.first() is not None

    async def mark(self, transaction: Any, message_id: str, handler: str) -> None:
        session: AsyncSession = transaction
        try:
            await session.execute(sa.insert(_INBOX), [{"message_id": message_id, "handler": handler,
                                                       "handled": time.time()}])
        except sa_exc.IntegrityError:
            raise DuplicateDelivery(f"{message_id} was recorded by {handler} meanwhile") from None

    async def _prune(self) -> None:
        try:
            async with self._engine().begin() as conn:
                await conn.execute(sa.delete(_INBOX).where(_INBOX.c.handled < time.time() - self.retention))
        except Exception as exc:  # tried again at the next interval
            log.warning("inbox rows older than %ss not deleted: %s", self.retention, exc)
        finally:
            self._pruning = None

    async def stop(self) -> None:
        if self._pruning is not None:
            await asyncio.gather(self._pruning, return_exceptions=True)


class _SqlScope(_ScopeContext):
    """A handler's scope that writes, in its transaction before the commit, the events bound
    for other processes (outbox) and the step of a durable run it is (:class:`Claim`)."""

    __slots__ = ("outbox", "claim")

    def __init__(self, unit_of_work: UnitOfWork, outbox: Outbox | None) -> None:
        super().__init__(unit_of_work)
        self.outbox = outbox
        self.claim: Claim | None = None

    async def __aenter__(self) -> TransactionScope:
        claim = current_claim.get()
        # The first scope of this unit of work entered for the step is the child's own; its
        # nested commands and the tasks it spawns come later and see it taken.
        if claim is not None and not claim.taken and claim.unit_of_work is self.unit_of_work:
            claim.taken, self.claim = True, claim
        return await super().__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        staged: builtins.list[Event] = []
        claim = self.claim
        if exc_type is None:
            try:
                if self.outbox is not None:
                    staged = await self.outbox.stage(self.scope, self.unit_of_work.transaction)
                if claim is not None:
                    await claim.store.record(
                        claim.record(self.scope.result), await self.unit_of_work.transaction(), claim.owner
                    )
            except BaseException as failure:  # the transaction must not commit without its rows
                if claim is not None:
                    claim.taken = False
                await super().__aexit__(type(failure), failure, failure.__traceback__)
                raise
        try:
            await super().__aexit__(exc_type, exc, tb)
        except BaseException:
            if self.outbox is not None:
                self.outbox.abandoned(staged)
            if claim is not None:
                claim.taken = False
            raise
        if claim is not None:
            if exc_type is None:
                claim.recorded = True
            else:  # rolled back: a retry of the step takes it again
                claim.taken = False


# -- durable runs (bollydog.durable) -------------------------------------------------------------------

_RUNS_METADATA = sa.MetaData()
_RUNS = sa.Table(
    "bollydog_runs",
    _RUNS_METADATA,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(400), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
)
#: Columns added to ``bollydog_runs`` after its first release (with what follows their type in
#: ``ADD COLUMN``): added to a database whose table lacks them.
_RUNS_ADDED = {"owner": "", "lease_until": " NOT NULL DEFAULT 0", "takeovers": " NOT NULL DEFAULT 0"}
_STEPS = sa.Table(
    "bollydog_steps",
    _RUNS_METADATA,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
)


class SqlRunStore(_OwnTable):
    """The runs and steps of durable handlers in a :class:`SqlAlchemyUnitOfWork`'s database
    (:class:`~bollydog.durable.store.RunStore`)."""

    async def start(self, run: RunRecord) -> tuple[RunRecord, builtins.list[StepRecord]]:
        try:
            async with self._engine().begin() as conn:
                found = await self._run(conn, run.run_id)
                if found is None:
                    await conn.execute(sa.insert(_RUNS), [_run_row(run)])
                    return run, []
                return found
        except sa_exc.IntegrityError:  # delivered twice at once: the other delivery added it
            found = await self.run(run.run_id)
            if found is None:
                raise
            return found

    async def record(self, step: StepRecord, transaction: Any = None, owner: str | None = None) -> None:
        row = {"run_id": step.run_id, "step": step.step, "kind": step.kind, "name": step.name,
               "ok": step.ok, "value": step.value}
        if owner is None:
            statement: Any = sa.insert(_STEPS)
        else:
            statement, row = _FENCED_STEP, {**row, "fence_run_id": step.run_id, "fence_owner": owner}
        if transaction is not None:
            session: AsyncSession = transaction
            result = await session.execute(statement, row)
        else:
            async with self._engine().begin() as conn:
                result = await conn.execute(statement, row)
        if owner is not None:
            _held(result, step.run_id)

    async def finish(self, run_id: str, status: Status, outcome: str | None, owner: str | None = None) -> None:
        condition = [_RUNS.c.run_id == run_id]
        if owner is not None:
            condition += [_RUNS.c.owner == owner, _RUNS.c.status == "running"]
        async with self._engine().begin() as conn:
            result = await conn.execute(
                sa.update(_RUNS).where(*condition)
                .values(status=status, outcome=outcome, updated=time.time(), owner=None, lease_until=0.0,
                        takeovers=0)
            )
        if owner is not None:
            _held(result, run_id)

    async def claim(self, run_ids: Sequence[str], owner: str, until: float, now: float,
                    gone: Sequence[str] = ()) -> builtins.list[str]:
        # The condition is evaluated by the write itself: a lease renewed meanwhile, or a
        # concurrent claim that committed first, no longer matches it.
        unheld = [_RUNS.c.owner.is_(None), _RUNS.c.lease_until < now]
        if gone:
            unheld.append(_RUNS.c.owner.in_(builtins.list(gone)))
        async with self._engine().begin() as conn:
            if conn.dialect.name == "postgresql":
                # The row is locked by its holder's step that commits now, or by a holder that
                # stopped in the middle of that commit: do not wait for the latter.
                await conn.execute(sa.text("SET LOCAL lock_timeout = '1s'"))
            result = await conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.run_id.in_(builtins.list(run_ids)), _RUNS.c.status == "running", sa.or_(*unheld))
                .values(owner=owner, lease_until=until, takeovers=_RUNS.c.takeovers + 1)
                .returning(_RUNS.c.run_id)
            )
            return [run_id for (run_id,) in result]

    async def renew(self, run_ids: Sequence[str], owner: str, until: float) -> builtins.list[str]:
        async with self._engine().begin() as conn:
            result = await conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.run_id.in_(builtins.list(run_ids)), _RUNS.c.owner == owner, _RUNS.c.status == "running")
                .values(lease_until=until)
                .returning(_RUNS.c.run_id)
            )
            return [run_id for (run_id,) in result]

    async def release(self, owner: str, keep: Sequence[str] = ()) -> int:
        condition = [_RUNS.c.owner == owner, _RUNS.c.status == "running"]
        if keep:
            condition.append(_RUNS.c.run_id.not_in(builtins.list(keep)))
        async with self._engine().begin() as conn:
            result = await conn.execute(sa.update(_RUNS).where(*condition).values(owner=None, lease_until=0.0))
            return int(result.rowcount or 0)

    async def leases(self) -> builtins.list[tuple[str, str | None, float, int]]:
        query = sa.select(_RUNS.c.run_id, _RUNS.c.owner, _RUNS.c.lease_until, _RUNS.c.takeovers).where(
            _RUNS.c.status == "running"
        ).order_by(_RUNS.c.created)
        async with self._engine().connect() as conn:
            return [(run_id, owner, float(until), int(takeovers))
                    for run_id, owner, until, takeovers in await conn.execute(query)]

    async def runs(self, statuses: Sequence[Status] = ()) -> builtins.list[RunRecord]:
        query = sa.select(_RUNS).order_by(_RUNS.c.created)
        if statuses:
            query = query.where(_RUNS.c.status.in_(builtins.list(statuses)))
        async with self._engine().connect() as conn:
            return [_run_record(row) for row in (await conn.execute(query)).mappings()]

    async def run(self, run_id: str) -> tuple[RunRecord, builtins.list[StepRecord]] | None:
        async with self._engine().connect() as conn:
            return await self._run(conn, run_id)

    async def forget_steps(self, run_id: str, from_step: int) -> int:
        async with self._engine().begin() as conn:
            result = await conn.execute(
                sa.delete(_STEPS).where(_STEPS.c.run_id == run_id, _STEPS.c.step >= from_step)
            )
            return int(result.rowcount or 0)

    @staticmethod
    async def _run(conn: Any, run_id: str) -> tuple[RunRecord, builtins.list[StepRecord]] | None:
        row = (await conn.execute(sa.select(_RUNS).where(_RUNS.c.run_id == run_id))).mappings().first()
        if row is None:
            return None
        steps = (await conn.execute(
            sa.select(_STEPS).where(_STEPS.c.run_id == run_id).order_by(_STEPS.c.step)
        )).mappings()
        return _run_record(row), [
            StepRecord(s["run_id"], s["step"], s["kind"], s["name"], bool(s["ok"]), s["value"]) for s in steps
        ]


def _add_run_columns(conn: Any) -> None:
    """Add to an existing ``bollydog_runs`` the columns it was created without."""
    present = {column["name"] for column in sa.inspect(conn).get_columns("bollydog_runs")}
    for name, constraints in _RUNS_ADDED.items():
        if name not in present:
            kind = _RUNS.c[name].type.compile(dialect=conn.dialect)
            # IF NOT EXISTS where the database has it: processes starting together on an old
            # database all add the column.
            guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
            try:
                conn.execute(sa.text(f"ALTER TABLE bollydog_runs ADD COLUMN {guard}{name} {kind}{constraints}"))
            except sa_exc.OperationalError:  # SQLite: another process added it first
                if name not in {c["name"] for c in sa.inspect(conn).get_columns("bollydog_runs")}:
                    raise


def _fenced_step_statement() -> Any:
    """A step's row, inserted only while ``fence_owner`` holds its running run: one statement,
    built once (its compiled form is cached). In PostgreSQL the run's row is read FOR SHARE, so
    a concurrent claim of it waits for this transaction (and one that committed first makes the
    insert add nothing); SQLite runs the statement under its write lock."""
    held = (
        sa.select(_RUNS.c.run_id)
        .where(_RUNS.c.run_id == sa.bindparam("fence_run_id"), _RUNS.c.owner == sa.bindparam("fence_owner"),
               _RUNS.c.status == "running")
        .with_for_update(read=True)
    )
    values = sa.select(*(sa.bindparam(c.name, type_=c.type) for c in _STEPS.columns)).where(sa.exists(held))
    return sa.insert(_STEPS).from_select([c.name for c in _STEPS.columns], values)


_FENCED_STEP = _fenced_step_statement()


def _held(result: Any, run_id: str) -> None:
    if result.rowcount != 1:
        raise RunLeaseLostError(
            f"durable run {run_id} is no longer held by this process: another process took it over "
            "(its lease ran out here), or it was cancelled (bollydog sagas cancel) or parked; nothing of this "
            "step was committed",
            run_id=run_id,
        )


def _run_row(run: RunRecord) -> dict[str, Any]:
    return {"run_id": run.run_id, "name": run.name, "version": run.version, "input": run.input,
            "status": run.status, "outcome": run.outcome, "created": run.created, "updated": run.updated,
            "owner": run.owner, "lease_until": run.lease_until, "takeovers": run.takeovers}


def _run_record(row: Any) -> RunRecord:
    return RunRecord(row["run_id"], row["name"], row["version"], row["input"], row["status"], row["outcome"],
                     row["created"], row["updated"], row["owner"], row["lease_until"], row["takeovers"])

"""What only the SQLAlchemy adapter does: engine start-up errors, model checks, sessions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.exc import IntegrityError

from bollydog.adapters.sqlalchemy import ModelError, SqlAlchemyProtocol, SqlAlchemyUnitOfWork, mask_url
from bollydog.bootstrap import build
from bollydog.config import ModuleRef, load_config
from bollydog.errors import ConfigError, HandlerTimeoutError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.persistence import handlers_contract as h
from tests.persistence import handlers_sql
from tests.persistence.kits import HANDLERS, make_kit, postgres_url
from tests.persistence.models_contract import Base, MemItem, SqlItem, Stamped

SECRET = "s3cret-pw"


def sqlite_url(tmp_path: Path, name: str = "t.db") -> str:
    return f"sqlite+aiosqlite:///{tmp_path / name}"


@pytest.fixture
async def protocol(tmp_path):
    """A connected protocol on a SQLite file, used outside any handler."""
    protocol = SqlAlchemyProtocol(SqlAlchemyUnitOfWork(sqlite_url(tmp_path), metadata=Base))
    await protocol.connect()
    yield protocol
    await protocol.disconnect()


# -- start-up errors: ConfigError naming the URL, password masked ---------------------------------


async def _connect_error(url: str, **options) -> str:
    uow = SqlAlchemyUnitOfWork(url, **options)
    with pytest.raises(ConfigError) as info:
        await uow.connect()
    message = str(info.value)
    assert SECRET not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
    return message


async def test_missing_driver_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if asyncpg were not installed
    message = await _connect_error(f"postgresql+asyncpg://bollydog:{SECRET}@127.0.0.1:5432/app")
    assert "postgresql+asyncpg://bollydog:***@127.0.0.1:5432/app" in message
    assert "'asyncpg' is not installed" in message and "bollydog[postgres]" in message


async def test_unknown_dialect_is_a_config_error():
    message = await _connect_error(f"nosuchdb+driver://u:{SECRET}@h/db")
    assert "nosuchdb+driver://u:***@h/db" in message and "no dialect" in message


async def test_unreachable_database_is_a_config_error():
    message = await _connect_error(f"postgresql+asyncpg://bollydog:{SECRET}@127.0.0.1:1/app")
    assert message.startswith("cannot connect to database postgresql+asyncpg://bollydog:***@127.0.0.1:1/app")
    assert "ConnectionRefused" in message


async def test_connect_timeout_is_a_config_error():
    # A server that accepts the connection and never answers.
    accepted = []
    silent = await asyncio.start_server(lambda reader, writer: accepted.append(writer), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        message = await _connect_error(
            f"postgresql+asyncpg://bollydog:{SECRET}@127.0.0.1:{port}/app", connect_timeout=0.2
        )
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert "no answer within 0.2s" in message


async def test_wrong_password_is_a_config_error():
    url = postgres_url().replace("bollydog:bollydog@", f"bollydog:{SECRET}@")
    message = await _connect_error(url)
    assert "password authentication failed" in message and "bollydog:***@" in message


def test_unparseable_url_is_a_config_error():
    for url in [f"postgresql+asyncpg://u:{SECRET}@host:notaport/db", "not a url", ""]:
        with pytest.raises(ConfigError) as info:
            SqlAlchemyUnitOfWork(url)
        assert SECRET not in str(info.value)


async def test_invalid_engine_option_is_a_config_error(tmp_path):
    message = await _connect_error(sqlite_url(tmp_path), no_such_option=1)
    assert "no_such_option" in message


async def test_hub_start_fails_with_the_config_error():
    uow = SqlAlchemyUnitOfWork(f"postgresql+asyncpg://bollydog:{SECRET}@127.0.0.1:1/app")
    hub = HubService(apps=[AppService.create_from(domain="x", protocol=SqlAlchemyProtocol(uow))])
    with pytest.raises(ConfigError, match=r"bollydog:\*\*\*@127\.0\.0\.1:1/app"):
        async with hub:
            pass


def test_password_never_in_repr():
    uow = SqlAlchemyUnitOfWork(f"postgresql+asyncpg://bollydog:{SECRET}@db/app")
    assert SECRET not in repr(uow) and SECRET not in uow.safe_url
    assert mask_url(f"x://u:{SECRET}@[bad") == "x://u:***@[bad"


def test_importing_without_sqlalchemy_names_the_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["sqlalchemy"] = None
        from bollydog.errors import MissingDependencyError
        try:
            import bollydog.adapters.sqlalchemy
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            print(exc.feature, exc.extra, exc.missing)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "SQL persistence sql sqlalchemy"


# -- metadata and configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [Base, Base.metadata, "tests.persistence.models_contract.Base", ModuleRef("tests.persistence.models_contract:Base"), [Base]],
    ids=["declarative", "metadata", "dotted", "module-ref", "list"],
)
async def test_metadata_forms_create_the_tables(tmp_path, metadata):
    uow = SqlAlchemyUnitOfWork(sqlite_url(tmp_path), metadata=metadata)
    await uow.connect()
    try:
        async with uow.engine.connect() as conn:
            names = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        assert {"contract_items", "contract_stamped"} <= set(names)
    finally:
        await uow.disconnect()


def test_bad_metadata_is_a_config_error():
    with pytest.raises(ConfigError, match="not a MetaData"):
        SqlAlchemyUnitOfWork("sqlite+aiosqlite://", metadata=42)
    with pytest.raises(ConfigError, match="no_such_module"):
        SqlAlchemyUnitOfWork("sqlite+aiosqlite://", metadata="no_such_module.Base")


async def test_create_tables_false_leaves_the_schema_alone(tmp_path):
    uow = SqlAlchemyUnitOfWork(sqlite_url(tmp_path), metadata=MetaData(), create_tables=False)
    uow.metadata = [Base.metadata]
    await uow.connect()
    async with uow.engine.connect() as conn:
        names = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    await uow.disconnect()
    assert names == []


async def test_config_file_wires_the_sql_adapter(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SHOP_DATABASE_URL", sqlite_url(tmp_path, "shop.db"))
    composition = build(load_config(Path(__file__).with_name("sql_settings.yaml")))
    hub = composition.hub
    uow = composition.apps[0].unit_of_work
    assert isinstance(uow, SqlAlchemyUnitOfWork) and uow.engine_options["pool_size"] == 3
    async with hub:
        await hub.execute(h.AddItem(item_id="k1", title="configured"))
        assert (await hub.execute(h.GetItem(item_id="k1"))).name == "configured"
    assert uow.engine is None  # disposed when the app stopped
    with pytest.raises(RuntimeError, match="not connected"):
        await uow.begin()


async def test_protocol_section_alone_creates_its_unit_of_work(tmp_path):
    section = {
        "module": ModuleRef("tests.persistence.models_contract.SqlItemStore"),
        "url": sqlite_url(tmp_path, "short.db"),
        "metadata": ModuleRef("tests.persistence.models_contract.Base"),
    }
    composition = build({"shop": {"handlers": [HANDLERS], "protocol": section}})
    assert isinstance(composition.apps[0].unit_of_work, SqlAlchemyUnitOfWork)
    async with composition.hub as hub:
        await hub.execute(h.AddItem(item_id="s1", title="short"))
        assert [i.iid for i in await hub.execute(h.ListItems())] == ["s1"]
    with pytest.raises(ConfigError, match="'url' option"):
        build({"shop": {"protocol": {"module": ModuleRef("bollydog.adapters.sqlalchemy.SqlAlchemyProtocol")}}})


# -- the CRUD surface -------------------------------------------------------------------------------


async def test_unknown_columns_and_unmapped_models_are_refused(protocol):
    with pytest.raises(ModelError, match="no mapped column 'colour'"):
        await protocol.search(SqlItem, colour="red")
    with pytest.raises(ModelError, match="no mapped attribute 'colour'"):
        await protocol.update(SqlItem, "x", colour="red")
    with pytest.raises(ModelError, match="MemItem is not an ORM-mapped class"):
        await protocol.add(MemItem(name="x"))
    with pytest.raises(ModelError, match="not an ORM-mapped class"):
        await protocol.list(dict)
    assert protocol.unit_of_work.engine.pool.checkedout() == 0


async def test_outside_a_handler_each_call_commits(protocol, tmp_path):
    await protocol.add(SqlItem(iid="o1", name="one"))
    await protocol.add_all([SqlItem(iid="o2", name="two"), SqlItem(iid="o3", name="three")])
    assert await protocol.delete(SqlItem, "o3") is True
    # A second engine on the same file sees the writes: they were committed.
    other = SqlAlchemyProtocol(SqlAlchemyUnitOfWork(sqlite_url(tmp_path)))
    await other.connect()
    try:
        assert [i.iid for i in await other.list(SqlItem)] == ["o1", "o2"]
    finally:
        await other.disconnect()
    with pytest.raises(ZeroDivisionError):
        async with protocol.session() as session:
            session.add(SqlItem(iid="o4", name="four"))
            await session.flush()
            1 / 0
    async with protocol.session() as session:
        assert (await session.scalars(select(SqlItem.iid).order_by(SqlItem.iid))).all() == ["o1", "o2"]
    assert protocol.unit_of_work.engine.pool.checkedout() == 0


async def test_server_generated_values_are_loaded_before_the_session_closes(protocol):
    row = await protocol.add(Stamped(label="first"))
    # The session is closed: these were loaded during add(), not lazily now.
    assert (row.id, row.status, row.version) == (1, "new", 1)
    row = await protocol.update(Stamped, row.id, label="second")
    assert (row.label, row.version) == ("second", 2)
    assert [r.label for r in await protocol.search(Stamped, status="new", version=2)] == ["second"]


async def test_search_none_matches_null(protocol):
    await protocol.add(Stamped(label="a"))
    await protocol.add(Stamped(label="b", note="noted"))
    assert [r.label for r in await protocol.search(Stamped, note=None)] == ["a"]
    assert [r.label for r in await protocol.search(Stamped, note="noted")] == ["b"]


async def test_duplicate_key_fails_the_handler_and_rolls_back(tmp_path):
    kit = await make_kit("sqlite", tmp_path)
    app = AppService.create_from(domain="sql", handlers=[HANDLERS, "tests.persistence.handlers_sql"], protocol=kit.protocol)
    async with HubService(apps=[app]) as hub:
        await hub.execute(h.AddItem(item_id="d1", title="first"))
        with pytest.raises(IntegrityError):
            await hub.execute(handlers_sql.AddDuplicate(item_id="d1"))
        assert [i.iid for i in await hub.execute(h.ListItems())] == ["d1"]
        assert kit.open_connections() == 0


# -- PostgreSQL specifics ---------------------------------------------------------------------------


@pytest.fixture
async def pg_hub(tmp_path):
    kit = await make_kit("postgresql", tmp_path)
    app = AppService.create_from(domain="pg", handlers=[HANDLERS, "tests.persistence.handlers_sql"], protocol=kit.protocol)
    try:
        async with HubService(apps=[app]) as hub:
            yield hub, kit
    finally:
        for cleanup in kit.cleanups:
            await cleanup()


async def test_timeout_during_a_statement_releases_the_connection(pg_hub):
    hub, kit = pg_hub
    with pytest.raises(HandlerTimeoutError):
        await hub.execute(handlers_sql.AddThenSleepInDatabase(item_id="z1", seconds=3, expire_time=0.2))
    assert kit.open_connections() == 0
    assert await hub.execute(h.GetItem(item_id="z1")) is None
    await hub.execute(h.AddItem(item_id="z2", title="after"))  # the pool still serves
    assert [i.iid for i in await hub.execute(h.ListItems())] == ["z2"]


async def test_nested_child_commits_while_the_parent_transaction_is_open(pg_hub):
    """The parent wrote first: its transaction is open while the child commits its own."""
    hub, kit = pg_hub
    with pytest.raises(h.Boom):
        await hub.execute(h.NestedParent(child_iid="p-child", parent_iid="p-parent", parent_first=True))
    assert [i.iid for i in await hub.execute(h.ListItems())] == ["p-child"]
    assert kit.open_connections() == 0


# -- in-memory SQLite: one connection, one transaction at a time ------------------------------------


@pytest.fixture
async def memory_sqlite_hub():
    protocol = SqlAlchemyProtocol(SqlAlchemyUnitOfWork("sqlite+aiosqlite://", metadata=Base))
    protocol.item = SqlItem
    app = AppService.create_from(domain="mem", handlers=[HANDLERS], protocol=protocol)
    async with HubService(apps=[app]) as hub:
        yield hub


async def test_in_memory_sqlite_serialises_transactions(memory_sqlite_hub):
    hub = memory_sqlite_hub
    commands = [h.AddItem(item_id=f"q{i:02d}", title="q", fail=i % 3 == 0, sleep=0.001) for i in range(30)]
    outcomes = await asyncio.gather(*(hub.execute(c) for c in commands), return_exceptions=True)
    assert [isinstance(o, h.Boom) for o in outcomes] == [i % 3 == 0 for i in range(30)]
    assert [i.iid for i in await hub.execute(h.ListItems())] == [f"q{i:02d}" for i in range(30) if i % 3]


async def test_in_memory_sqlite_refuses_a_nested_transaction_instead_of_deadlocking(memory_sqlite_hub):
    hub = memory_sqlite_hub
    with pytest.raises(ConfigError, match="single connection"):
        await hub.execute(h.NestedParent(child_iid="c", parent_iid="p", parent_first=True))
    with pytest.raises(h.Boom):  # child first: the parent's transaction starts after the child's
        await hub.execute(h.NestedParent(child_iid="c", parent_iid="p"))
    assert [i.iid for i in await hub.execute(h.ListItems())] == ["c"]

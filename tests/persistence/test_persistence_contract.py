"""The persistence contract: every Protocol/UnitOfWork adapter passes these, through a real hub.

Parametrized by the ``kit`` fixture over memory, SQLite (aiosqlite, a file) and PostgreSQL
(asyncpg). Nested commands: a child command yielded by a generator handler runs in its own
transaction and commits on its own, even when the parent fails afterwards.
"""

from __future__ import annotations

import asyncio

import pytest

from bollydog.errors import HandlerTimeoutError
from tests.persistence import handlers_contract as h


async def _ids(hub, **kwargs) -> list[str]:
    return [item.iid for item in await hub.execute(h.ListItems(**kwargs))]


async def test_crud_round_trip(hub, kit):
    added = await hub.execute(h.AddItem(item_id="a1", title="apple", qty=3))
    assert (added.iid, added.name, added.qty) == ("a1", "apple", 3)

    got = await hub.execute(h.GetItem(item_id="a1"))
    assert isinstance(got, kit.item)
    assert (got.iid, got.name, got.qty) == ("a1", "apple", 3)  # usable after the commit

    updated = await hub.execute(h.UpdateItem(item_id="a1", values={"qty": 5, "name": "apricot"}))
    assert (updated.name, updated.qty) == ("apricot", 5)
    got = await hub.execute(h.GetItem(item_id="a1"))
    assert (got.name, got.qty) == ("apricot", 5)

    assert await hub.execute(h.RemoveItem(item_id="a1")) is True
    assert await hub.execute(h.GetItem(item_id="a1")) is None
    assert await hub.execute(h.RemoveItem(item_id="a1")) is False
    assert await hub.execute(h.UpdateItem(item_id="a1", values={"qty": 1})) is None
    assert await hub.execute(h.GetItem(item_id="missing")) is None


async def test_add_all_list_limit_offset(hub, kit):
    await hub.execute(h.AddItems(item_ids=["b1", "b2", "b3", "b4", "b5"]))
    assert await _ids(hub) == ["b1", "b2", "b3", "b4", "b5"]
    assert await _ids(hub, limit=2) == ["b1", "b2"]
    assert await _ids(hub, limit=2, offset=2) == ["b3", "b4"]
    assert await _ids(hub, offset=4) == ["b5"]
    assert await _ids(hub, offset=9) == []


async def test_search_by_equality(hub, kit):
    for iid, name, qty in [("s1", "pear", 1), ("s2", "pear", 2), ("s3", "plum", 2)]:
        await hub.execute(h.AddItem(item_id=iid, title=name, qty=qty))
    found = await hub.execute(h.SearchItems(filters={"name": "pear"}))
    assert sorted(i.iid for i in found) == ["s1", "s2"]
    found = await hub.execute(h.SearchItems(filters={"name": "pear", "qty": 2}))
    assert [i.iid for i in found] == ["s2"]
    assert await hub.execute(h.SearchItems(filters={"name": "fig"})) == []
    # A value that would be dangerous if pasted into SQL is just a value.
    assert await hub.execute(h.SearchItems(filters={"name": "x' OR '1'='1"})) == []


async def test_reads_see_own_writes_inside_the_handler(hub, kit):
    result = await hub.execute(h.AddThenRead(item_id="r1"))
    assert result == {"got": True, "found": ["r1"]}


async def test_commit_on_success_rollback_on_exception(hub, kit):
    await hub.execute(h.AddItem(item_id="c1", title="kept"))
    with pytest.raises(h.Boom):
        await hub.execute(h.AddItem(item_id="c2", title="lost", fail=True))
    with pytest.raises(h.Boom):
        await hub.execute(h.UpdateItem(item_id="c1", values={"name": "changed"}, fail=True))
    with pytest.raises(h.Boom):
        await hub.execute(h.RemoveItem(item_id="c1", fail=True))
    assert await _ids(hub) == ["c1"]
    assert (await hub.execute(h.GetItem(item_id="c1"))).name == "kept"
    assert kit.open_connections() == 0


async def test_rollback_when_the_handler_times_out(hub, kit):
    command = h.AddItem(item_id="t1", title="slow", sleep=5, expire_time=0.05)
    with pytest.raises(HandlerTimeoutError):
        await hub.execute(command)
    with pytest.raises(HandlerTimeoutError):
        await command.state
    assert await hub.execute(h.GetItem(item_id="t1")) is None  # no partial write
    assert kit.open_connections() == 0
    # The store still works after the interrupted transaction.
    await hub.execute(h.AddItem(item_id="t2", title="fast"))
    assert await _ids(hub) == ["t2"]


async def test_domain_events_are_dispatched_after_commit(hub, kit):
    await hub.execute(h.AddItem(item_id="e1", title="evented", event=True))
    await hub.execute(h.RecordNote(text="hello"))
    assert await hub.drain(5)
    # The event handler ran in its own transaction and could read the committed item.
    assert sorted(h.SEEN) == [("itemadded", "e1", True), ("noted", "hello", True)]


async def test_no_events_after_rollback(hub, kit):
    with pytest.raises(h.Boom):
        await hub.execute(h.AddItem(item_id="e2", title="doomed", event=True, fail=True))
    with pytest.raises(h.Boom):
        await hub.execute(h.RecordNote(text="never", fail=True))
    with pytest.raises(HandlerTimeoutError):
        await hub.execute(h.AddItem(item_id="e3", title="slow", event=True, sleep=5, expire_time=0.05))
    assert await hub.drain(5)
    assert h.SEEN == []


async def test_nested_command_commits_on_its_own(hub, kit):
    """The child runs in its own transaction: it stays committed when the parent then fails."""
    with pytest.raises(h.Boom):
        await hub.execute(h.NestedParent(child_iid="n-child", parent_iid="n-parent"))
    assert await _ids(hub) == ["n-child"]
    assert kit.open_connections() == 0


async def test_concurrent_handlers_lose_no_write(hub, kit):
    ids = [f"w{i:03d}" for i in range(100)]
    results = await asyncio.gather(*(hub.execute(h.AddItem(item_id=i, title="w")) for i in ids))
    assert [r.iid for r in results] == ids
    assert await _ids(hub) == ids
    assert len(await hub.execute(h.SearchItems(filters={"name": "w"}))) == 100
    assert kit.open_connections() == 0


async def test_concurrent_failures_roll_back_only_themselves(hub, kit):
    commands = [h.AddItem(item_id=f"m{i:02d}", title="m", fail=i % 2 == 1) for i in range(20)]
    outcomes = await asyncio.gather(*(hub.execute(c) for c in commands), return_exceptions=True)
    assert [isinstance(o, h.Boom) for o in outcomes] == [i % 2 == 1 for i in range(20)]
    assert await _ids(hub) == [f"m{i:02d}" for i in range(0, 20, 2)]
    assert kit.open_connections() == 0

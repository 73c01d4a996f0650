"""The state store contract: memory, SQLite and PostgreSQL answer the same, through a hub."""

from __future__ import annotations

import asyncio

import pytest

from bollydog.state.messages import (
    DeleteObject,
    GetObject,
    ListChanges,
    ListObjects,
    PutObject,
    StateChanged,
    WatchObjects,
)
from bollydog.state.objects import ConflictError, ObjectNotFoundError, WatchExpiredError
from bollydog.state.selectors import SelectorError

DEVICES = [
    ("d1", {"env": "prod", "tier": "web"}),
    ("d2", {"env": "prod", "tier": "db"}),
    ("d3", {"env": "dev", "tier": "web"}),
    ("d4", {"env": "staging"}),
    ("d5", {}),
]


async def _seed(hub):
    for key, labels in DEVICES:
        await hub.execute(PutObject(kind="device", key=key, labels=labels, spec={"n": int(key[1])}))
    await hub.execute(PutObject(kind="site", key="s1", labels={"env": "prod"}))


async def _keys(hub, selector="", kind="device"):
    listing = await hub.execute(ListObjects(kind=kind, selector=selector))
    return [o.key for o in listing["items"]]


async def test_put_get_versions(hub):
    first = await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"t": 20}))
    assert first.version > 0 and first.spec == {"t": 20}
    got = await hub.execute(GetObject(kind="device", key="d1"))
    assert got == first
    second = await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"t": 21}))
    assert second.version > first.version
    same = await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"t": 21}))
    assert same.version == second.version  # an unchanged object gets no new version
    with pytest.raises(ObjectNotFoundError):
        await hub.execute(GetObject(kind="device", key="nope"))
    with pytest.raises(ObjectNotFoundError):
        await hub.execute(GetObject(kind="site", key="d1"))  # kinds are separate


async def test_optimistic_writes(hub):
    created = await hub.execute(PutObject(kind="device", key="d1", spec={"t": 1}, expected_version=0))
    with pytest.raises(ConflictError) as info:
        await hub.execute(PutObject(kind="device", key="d1", spec={"t": 2}, expected_version=0))
    assert (info.value.expected_version, info.value.actual_version) == (0, created.version)
    updated = await hub.execute(PutObject(kind="device", key="d1", spec={"t": 2}, expected_version=created.version))
    with pytest.raises(ConflictError):
        await hub.execute(PutObject(kind="device", key="d1", spec={"t": 3}, expected_version=created.version))
    with pytest.raises(ConflictError):
        await hub.execute(DeleteObject(kind="device", key="d1", expected_version=created.version))
    assert (await hub.execute(GetObject(kind="device", key="d1"))).spec == {"t": 2}
    gone = await hub.execute(DeleteObject(kind="device", key="d1", expected_version=updated.version))
    assert gone.version > updated.version and gone.spec == {"t": 2}
    with pytest.raises(ObjectNotFoundError):
        await hub.execute(DeleteObject(kind="device", key="d1"))
    again = await hub.execute(PutObject(kind="device", key="d1", expected_version=0))
    assert again.version > gone.version


async def test_racing_writers_one_wins(hub):
    base = await hub.execute(PutObject(kind="device", key="r", spec={"v": 0}))
    results = await asyncio.gather(
        *(hub.execute(PutObject(kind="device", key="r", spec={"v": i}, expected_version=base.version))
          for i in range(1, 6)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, ConflictError) for e in lost), results
    assert (await hub.execute(GetObject(kind="device", key="r"))).spec == won[0].spec


@pytest.mark.parametrize("selector,keys", [
    ("", ["d1", "d2", "d3", "d4", "d5"]),
    ("env=prod", ["d1", "d2"]),
    ("env==prod,tier=web", ["d1"]),
    ("env!=prod", ["d3", "d4", "d5"]),
    ("env in (dev,staging)", ["d3", "d4"]),
    ("env notin (prod,dev)", ["d4", "d5"]),
    ("tier", ["d1", "d2", "d3"]),
    ("!tier", ["d4", "d5"]),
    ("env=prod,!tier", []),
    ("env=nope", []),
    ("env=x' OR '1'='1", None),  # not a label value: a 422, not a query
])
async def test_list_by_selector(hub, selector, keys):
    await _seed(hub)
    if keys is None:
        with pytest.raises(SelectorError):
            await _keys(hub, selector)
        return
    assert await _keys(hub, selector) == keys


async def test_list_every_kind_and_structured_selector(hub):
    await _seed(hub)
    listing = await hub.execute(ListObjects(selector={"matchLabels": {"env": "prod"}}))
    assert [(o.kind, o.key) for o in listing["items"]] == [("device", "d1"), ("device", "d2"), ("site", "s1")]
    assert listing["version"] == max(o.version for o in listing["items"])


async def test_labels_follow_updates_and_deletes(hub):
    await _seed(hub)
    await hub.execute(PutObject(kind="device", key="d1", labels={"env": "dev"}))
    await hub.execute(DeleteObject(kind="device", key="d2"))
    assert await _keys(hub, "env=prod") == []
    assert await _keys(hub, "env=dev") == ["d1", "d3"]
    assert await _keys(hub, "tier") == ["d3"]


async def test_changes_since_a_version(hub):
    await _seed(hub)
    start = (await hub.execute(ListObjects()))["version"]
    await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"n": 9}))
    await hub.execute(DeleteObject(kind="device", key="d3"))
    await hub.execute(PutObject(kind="device", key="d9", labels={"env": "prod"}))
    found = await hub.execute(ListChanges(since_version=start))
    assert [(c.type, c.object.key) for c in found["changes"]] == [
        ("MODIFIED", "d1"), ("DELETED", "d3"), ("ADDED", "d9")]
    versions = [c.object.version for c in found["changes"]]
    assert versions == sorted(versions) and found["version"] == versions[-1]
    prod = await hub.execute(ListChanges(since_version=start, selector="env=prod"))
    assert [c.object.key for c in prod["changes"]] == ["d1", "d9"]


@pytest.mark.parametrize("store_options", [{"history": 3, "compact_every": 1}])
async def test_too_old_a_version_is_gone(hub, adapter, store_options):
    first = await hub.execute(PutObject(kind="device", key="a"))
    for i in range(6):
        await hub.execute(PutObject(kind="device", key="a", spec={"i": i}))
    with pytest.raises(WatchExpiredError) as info:
        await hub.execute(ListChanges(since_version=first.version))
    assert "list again" in str(info.value)
    latest = (await hub.execute(ListObjects()))["version"]
    recent = await hub.execute(ListChanges(since_version=latest - 2))
    assert [c.object.spec for c in recent["changes"]] == [{"i": 4}, {"i": 5}]
    with pytest.raises(WatchExpiredError):
        await hub.execute(WatchObjects(since_version=first.version, timeout=1))


async def test_every_change_is_an_event_after_commit(hub):
    seen: list[StateChanged] = []

    async def record(event: StateChanged) -> None:
        seen.append(event)

    hub.register(record)
    await hub.execute(PutObject(kind="device", key="e", labels={"env": "prod"}))
    await hub.execute(PutObject(kind="device", key="e", labels={"env": "dev"}))
    with pytest.raises(ConflictError):
        await hub.execute(PutObject(kind="device", key="e", expected_version=1_000_000))
    await hub.execute(DeleteObject(kind="device", key="e"))
    for _ in range(100):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.01)
    seen.sort(key=lambda e: e.object.version)
    assert [(e.type, e.object.labels, e.previous and e.previous.labels) for e in seen] == [
        ("ADDED", {"env": "prod"}, None),
        ("MODIFIED", {"env": "dev"}, {"env": "prod"}),
        ("DELETED", {"env": "dev"}, {"env": "dev"}),
    ]


async def test_watch_lists_then_streams(hub):
    await _seed(hub)
    watch = WatchObjects(kind="device", selector="env=prod", timeout=5, limit=4)
    await hub.put_message(watch)
    stream = watch.stream()
    first = [await anext(stream), await anext(stream)]
    assert [(p["type"], p["object"].key) for p in first] == [("ADDED", "d1"), ("ADDED", "d2")]
    await hub.execute(PutObject(kind="device", key="d3", labels={"env": "dev"}, spec={"x": 1}))  # not selected
    await hub.execute(PutObject(kind="device", key="d6", labels={"env": "prod"}))
    await hub.execute(DeleteObject(kind="device", key="d1"))
    rest = [p async for p in stream]
    assert [(p["type"], p.get("object") and p["object"].key) for p in rest] == [
        ("ADDED", "d6"), ("DELETED", "d1"), ("BOOKMARK", None)]
    assert rest[-1]["version"] == rest[1]["object"].version
    assert (await watch.state)["type"] == "BOOKMARK"


async def test_watch_resumes_from_a_version(hub):
    await _seed(hub)
    mark = (await hub.execute(ListObjects()))["version"]
    await hub.execute(PutObject(kind="device", key="d2", labels={"env": "prod"}, spec={"n": 20}))
    watch = WatchObjects(since_version=mark, timeout=0.3)
    await hub.put_message(watch)
    items = [p async for p in watch.stream()]
    assert [(p["type"], p.get("object") and p["object"].key) for p in items] == [
        ("MODIFIED", "d2"), ("BOOKMARK", None)]

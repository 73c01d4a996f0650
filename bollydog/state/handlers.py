"""Handlers of the state service's commands (registered by :class:`StateService`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from bollydog.state.messages import (
    DeleteObject,
    GetObject,
    ListChanges,
    ListObjects,
    PutObject,
    StateChanged,
    WatchObjects,
)
from bollydog.state.objects import ObjectNotFoundError, StateObject
from bollydog.state.selectors import LabelSelector
from bollydog.state.service import StateService
from bollydog.state.store import selects


async def get_object(command: GetObject, app: StateService) -> StateObject:
    found = await app.store.get(command.kind, command.key)
    if found is None:
        raise ObjectNotFoundError(command.kind, command.key)
    return found


async def list_objects(command: ListObjects, app: StateService) -> dict[str, Any]:
    items, version = await app.store.list(command.kind, LabelSelector.of(command.selector))
    return {"version": version, "items": items}


async def put_object(command: PutObject, app: StateService) -> StateObject:
    spec = app.check_spec(command.kind, command.spec)
    obj = StateObject(kind=command.kind, key=command.key, labels=command.labels, spec=spec)
    return await app.store.put(obj, command.expected_version)


async def delete_object(command: DeleteObject, app: StateService) -> StateObject:
    return await app.store.delete(command.kind, command.key, command.expected_version)


async def list_changes(command: ListChanges, app: StateService) -> dict[str, Any]:
    changes, version = await app.store.changes(
        command.since_version, command.kind, LabelSelector.of(command.selector)
    )
    return {"version": version, "changes": changes}


async def on_state_changed(event: StateChanged, app: StateService) -> None:
    app.broadcast(event)


async def watch_objects(command: WatchObjects, app: StateService) -> AsyncGenerator[Any, Any]:
    selector = LabelSelector.of(command.selector)  # a bad selector fails before anything streams
    loop = asyncio.get_running_loop()
    deadline = loop.time() + command.timeout
    sent = 0
    # Subscribe before reading, so no change falls between the read and the live stream; the
    # reads are nested commands, each in a transaction of its own, so no transaction stays
    # open while the watch waits.
    queue = app.subscribe()
    try:
        if command.since_version is None:
            listing = yield ListObjects(kind=command.kind, selector=command.selector)
            version: int = listing["version"]
            backlog = [{"type": "ADDED", "object": obj} for obj in listing["items"]]
        else:
            found = yield ListChanges(since_version=command.since_version, kind=command.kind,
                                      selector=command.selector)
            version = command.since_version
            backlog = [{"type": c.type, "object": c.object} for c in found["changes"]]
        seen: dict[tuple[str, str], int] = {}
        for item in backlog:
            obj = item["object"]
            seen[obj.ref] = obj.version
            version = max(version, obj.version)
            yield item
            sent += 1
            if command.limit is not None and sent >= command.limit:
                break
        floor = version
        while command.limit is None or sent < command.limit:  # noqa: SIM113
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            obj = event.object
            # Events of one object may be handled out of order: only newer versions count.
            if obj.version <= floor or obj.version <= seen.get(obj.ref, 0):
                continue
            seen[obj.ref] = obj.version
            if not selects(obj, command.kind, selector):
                continue
            version = max(version, obj.version)
            yield {"type": event.type, "object": obj}
            sent += 1
        yield {"type": "BOOKMARK", "version": version}
    finally:
        app.unsubscribe(queue)

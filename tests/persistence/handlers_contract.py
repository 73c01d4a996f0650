"""Handlers of the persistence contract suite (discovered as ``tests.persistence.handlers_contract``).

They depend on the port only: ``protocol.item`` is set by the test kit to the adapter's item
class (pydantic for memory, ORM for SQLAlchemy).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bollydog.models.base import Command, Event
from bollydog.models.protocol import Protocol, UnitOfWork

#: What the event handlers saw: ``(event name, iid, whether the item was readable then)``.
SEEN: list[tuple[str, str, bool]] = []


class Boom(Exception):
    """The failure the handlers raise on request."""


class ItemAdded(Event):
    item_id: str


class Noted(Event):
    text: str


class AddItem(Command):
    item_id: str
    title: str
    qty: int = 0
    fail: bool = False
    sleep: float = 0.0
    event: bool = False


class AddItems(Command):
    item_ids: list[str]
    title: str = "batch"


class GetItem(Command):
    item_id: str


class ListItems(Command):
    limit: int | None = None
    offset: int = 0


class SearchItems(Command):
    filters: dict[str, Any]


class UpdateItem(Command):
    item_id: str
    values: dict[str, Any]
    fail: bool = False


class RemoveItem(Command):
    item_id: str
    fail: bool = False


class AddThenRead(Command):
    item_id: str


class RecordNote(Command):
    text: str
    fail: bool = False


class NestedParent(Command):
    child_iid: str
    parent_iid: str
    parent_first: bool = False


def _item(protocol: Any, iid: str, name: str, qty: int = 0) -> Any:
    return protocol.item(iid=iid, name=name, qty=qty)


async def add_item(command: AddItem, protocol: Protocol) -> Any:
    item = _item(protocol, command.item_id, command.title, command.qty)
    if command.event:
        item.raise_event(ItemAdded(item_id=command.item_id))
    await protocol.add(item)
    if command.sleep:
        await asyncio.sleep(command.sleep)
    if command.fail:
        raise Boom(f"failed after adding {command.item_id}")
    return item


async def add_items(command: AddItems, protocol: Protocol) -> Any:
    return await protocol.add_all([_item(protocol, iid, command.title) for iid in command.item_ids])


async def get_item(command: GetItem, protocol: Protocol) -> Any:
    return await protocol.get(protocol.item, command.item_id)


async def list_items(command: ListItems, protocol: Protocol) -> Any:
    return await protocol.list(protocol.item, limit=command.limit, offset=command.offset)


async def search_items(command: SearchItems, protocol: Protocol) -> Any:
    return await protocol.search(protocol.item, **command.filters)


async def update_item(command: UpdateItem, protocol: Protocol) -> Any:
    updated = await protocol.update(protocol.item, command.item_id, **command.values)
    if command.fail:
        raise Boom(f"failed after updating {command.item_id}")
    return updated


async def remove_item(command: RemoveItem, protocol: Protocol) -> bool:
    removed = await protocol.delete(protocol.item, command.item_id)
    if command.fail:
        raise Boom(f"failed after deleting {command.item_id}")
    return removed


async def add_then_read(command: AddThenRead, protocol: Protocol) -> dict[str, Any]:
    """Read-your-writes inside one transaction."""
    await protocol.add(_item(protocol, command.item_id, "fresh", 1))
    got = await protocol.get(protocol.item, command.item_id)
    found = await protocol.search(protocol.item, name="fresh")
    return {"got": got is not None, "found": [i.iid for i in found]}


async def record_note(command: RecordNote, unit_of_work: UnitOfWork) -> None:
    unit_of_work.record_event(Noted(text=command.text))
    if command.fail:
        raise Boom("failed after recording a note")


async def nested_parent(command: NestedParent, protocol: Protocol):
    """Orchestrates: the child command has its own transaction; then the parent fails."""
    if command.parent_first:
        await protocol.add(_item(protocol, command.parent_iid, "parent"))
    child = yield AddItem(item_id=command.child_iid, title="child")
    if not command.parent_first:
        await protocol.add(_item(protocol, command.parent_iid, "parent"))
    yield child.iid  # the child's result: the stored item
    raise Boom("parent failed after its child committed")


async def on_item_added(event: ItemAdded, protocol: Protocol) -> None:
    # Runs in a transaction of its own, after the writer's commit: the item must be readable.
    found = await protocol.get(protocol.item, event.item_id)
    SEEN.append(("itemadded", event.item_id, found is not None))


async def on_noted(event: Noted) -> None:
    SEEN.append(("noted", event.text, True))

"""The UnitOfWork port and the memory adapter: what a handler sees when things go wrong."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bollydog.adapters.memory import MemoryProtocol
from bollydog.models.base import BaseDomain, Event
from bollydog.models.protocol import UnitOfWork


class BrokenRollback(UnitOfWork):
    async def begin(self) -> Any:
        return object()

    async def rollback(self, transaction: Any) -> None:
        raise ConnectionError("connection lost during rollback")


class HandlerError(Exception):
    pass


async def test_a_failing_rollback_does_not_mask_the_handlers_error_in_a_scope(caplog):
    uow = BrokenRollback()
    with caplog.at_level(logging.ERROR, logger="bollydog.uow"):
        with pytest.raises(HandlerError):
            async with uow.scope():
                await uow.transaction()
                raise HandlerError("the handler's own error")
    assert "rollback failed" in caplog.text and "connection lost" in caplog.text


async def test_a_failing_rollback_does_not_mask_the_error_in_an_operation():
    uow = BrokenRollback()
    with pytest.raises(HandlerError):
        async with uow.operation():
            raise HandlerError("the caller's own error")


class Item(BaseDomain):
    qty: int = 0


class Changed(Event):
    qty: int = 0


async def test_memory_update_returns_the_object_whose_events_are_published():
    protocol = MemoryProtocol()
    item = Item()
    await protocol.add(item)
    async with protocol.unit_of_work.scope() as scope:
        updated = await protocol.update(Item, item.iid, qty=2)
        updated.raise_event(Changed(qty=2))  # as with the SQL adapter, whose update returns the tracked object
    assert [e.qty for e in scope.collect_events()] == [2]


async def test_memory_reads_do_not_carry_events_already_published():
    protocol = MemoryProtocol()
    item = Item()
    item.raise_event(Changed(qty=1))
    async with protocol.unit_of_work.scope() as scope:
        await protocol.add(item)
    assert len(scope.collect_events()) == 1  # published once, after the commit
    async with protocol.unit_of_work.scope() as scope:
        again = await protocol.get(Item, item.iid)
        again.qty = 5
        await protocol.add(again)  # saved again: its old event must not be published twice
    assert scope.collect_events() == []

"""The state store's port, :class:`StateProtocol`, and its in-memory adapter.

The port does the bookkeeping once: label checks, the expected-version check, the change type,
the ``StateChanged`` event recorded for publication after the transaction commits. Adapters
fill in five hooks (read one, write one, delete one, list, read the change log) and keep a
bounded change log, so a watch can resume from a version as long as the log still holds it.
"""

from __future__ import annotations

import bisect
import builtins
from dataclasses import dataclass, field
from typing import Any

from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.state.messages import StateChanged
from bollydog.state.objects import Change, ChangeType, ConflictError, ObjectNotFoundError, StateObject, WatchExpiredError
from bollydog.state.selectors import LabelSelector

__all__ = ["MemoryStateProtocol", "MemoryStateUnitOfWork", "StateProtocol"]

#: Changes a store keeps for watches to resume from, unless its ``history`` option says.
DEFAULT_HISTORY = 10_000


class StateProtocol(Protocol):
    """Objects by ``(kind, key)`` with labels and resource versions. Subclass for a backend.

    ``expected_version`` on a write: ``None`` writes whatever is stored, ``0`` only creates,
    ``n`` only replaces version ``n``; otherwise :class:`ConflictError`.
    """

    def __init__(self, unit_of_work: UnitOfWork | None = None, *, history: int = DEFAULT_HISTORY, **options: Any) -> None:
        super().__init__(unit_of_work, **options)
        if not isinstance(history, int) or history < 1:
            raise ValueError(f"history: expected a positive number of changes, got {history!r}")
        self.history = history

    # -- adapter hooks ------------------------------------------------------------------------

    async def _get(self, tx: Any, kind: str, key: str) -> StateObject | None:
        raise NotImplementedError

    async def _save(self, tx: Any, obj: StateObject, previous: int, change: ChangeType) -> int:
        """Store ``obj`` if the stored version is still ``previous`` (0: none); log the change;
        return its new version. Raise :class:`ConflictError` when the stored version moved."""
        raise NotImplementedError

    async def _list(self, tx: Any, kind: str | None, selector: LabelSelector) -> builtins.list[StateObject]:
        raise NotImplementedError

    async def _changes(self, tx: Any, since: int) -> tuple[builtins.list[Change], int, int]:
        """Logged changes after ``since`` in version order, the version up to which the log was
        compacted, and the store's current version."""
        raise NotImplementedError

    # -- the port -----------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> StateObject | None:
        async with self.unit_of_work.operation() as tx:
            return await self._get(tx, kind, key)

    async def put(self, obj: StateObject, expected_version: int | None = None) -> StateObject:
        """Create or replace ``obj`` (its ``version`` is ignored); the stored object returns."""
        async with self.unit_of_work.operation() as tx:
            current = await self._get(tx, obj.kind, obj.key)
            previous = current.version if current is not None else 0
            if expected_version is not None and expected_version != previous:
                raise ConflictError(obj.kind, obj.key, expected_version, previous)
            if current is not None and current.labels == obj.labels and current.spec == obj.spec:
                return current  # nothing changed: no new version, no event, nothing to fire
            change: ChangeType = "ADDED" if current is None else "MODIFIED"
            version = await self._save(tx, obj, previous, change)
        stored = obj.model_copy(update={"version": version})
        self._changed(change, stored, current)
        return stored

    async def delete(self, kind: str, key: str, expected_version: int | None = None) -> StateObject:
        """Delete the object; what returns is it, with the version of its deletion."""
        async with self.unit_of_work.operation() as tx:
            current = await self._get(tx, kind, key)
            if current is None:
                if expected_version:
                    raise ConflictError(kind, key, expected_version, 0)
                raise ObjectNotFoundError(kind, key)
            if expected_version is not None and expected_version != current.version:
                raise ConflictError(kind, key, expected_version, current.version)
            version = await self._save(tx, current, current.version, "DELETED")
        gone = current.model_copy(update={"version": version})
        self._changed("DELETED", gone, current)
        return gone

    async def list(
        self, kind: str | None = None, selector: LabelSelector | str | None = None
    ) -> tuple[builtins.list[StateObject], int]:
        """Objects of ``kind`` (every kind: None) that ``selector`` selects, ordered by kind and
        key, and the store's version they are current at (watch from it)."""
        sel = LabelSelector.of(selector)
        async with self.unit_of_work.operation() as tx:
            items = await self._list(tx, kind, sel)
            _, _, version = await self._changes(tx, 1 << 62)
        return items, version

    async def changes(
        self, since: int, kind: str | None = None, selector: LabelSelector | str | None = None
    ) -> tuple[builtins.list[Change], int]:
        """Changes after version ``since`` of the objects selected, and the current version;
        :class:`WatchExpiredError` when the log no longer reaches back to ``since``."""
        sel = LabelSelector.of(selector)
        async with self.unit_of_work.operation() as tx:
            changes, compacted, version = await self._changes(tx, since)
        if since < compacted:
            raise WatchExpiredError(since, compacted)
        return [c for c in changes if selects(c.object, kind, sel)], version

    def _changed(self, change: ChangeType, obj: StateObject, previous: StateObject | None) -> None:
        if self.unit_of_work.in_handler():
            # Published by the hub once the transaction committed; dropped if it rolls back.
            self.unit_of_work.record_event(StateChanged(type=change, object=obj, previous=previous))


def selects(obj: StateObject, kind: str | None, selector: LabelSelector) -> bool:
    return (kind is None or obj.kind == kind) and selector.matches(obj.labels)


# -- memory ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Write:
    obj: StateObject
    previous: int
    change: ChangeType


@dataclass(slots=True)
class _StateTransaction:
    writes: dict[tuple[str, str], _Write] = field(default_factory=dict)


class MemoryStateUnitOfWork(UnitOfWork):
    """Objects and the change log in dicts; writes staged per transaction, applied on commit.

    The commit checks again that every object it replaces is still at the version the write
    read, so two handlers racing on one object cannot both win.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.objects: dict[tuple[str, str], StateObject] = {}
        self.log: list[Change] = []
        self.version = 0
        self.compacted = 0
        self.history = DEFAULT_HISTORY

    def next_version(self) -> int:
        self.version += 1
        return self.version

    async def begin(self) -> _StateTransaction:
        return _StateTransaction()

    async def commit(self, transaction: _StateTransaction) -> None:
        for ref, write in transaction.writes.items():
            stored = self.objects.get(ref)
            actual = stored.version if stored is not None else 0
            if actual != write.previous:
                raise ConflictError(ref[0], ref[1], write.previous, actual)
        for ref, write in transaction.writes.items():
            if write.change == "DELETED":
                self.objects.pop(ref, None)
            else:
                self.objects[ref] = write.obj
            change = Change(type=write.change, object=write.obj)
            # Versions are allocated when written and committed in any order: keep the log sorted.
            bisect.insort(self.log, change, key=lambda c: c.object.version)
        excess = len(self.log) - self.history
        if excess > 0:
            self.compacted = self.log[excess - 1].object.version
            del self.log[:excess]

    async def rollback(self, transaction: _StateTransaction) -> None:
        transaction.writes.clear()


class MemoryStateProtocol(StateProtocol):
    """The state store in this process's memory: the default, and the fake for tests."""

    unit_of_work: MemoryStateUnitOfWork

    def __init__(self, unit_of_work: UnitOfWork | None = None, **options: Any) -> None:
        uow = unit_of_work if unit_of_work is not None else MemoryStateUnitOfWork()
        if not isinstance(uow, MemoryStateUnitOfWork):
            raise TypeError(f"MemoryStateProtocol needs a MemoryStateUnitOfWork, got {type(uow).__name__}")
        super().__init__(uow, **options)
        uow.history = self.history

    async def _get(self, tx: _StateTransaction, kind: str, key: str) -> StateObject | None:
        write = tx.writes.get((kind, key))
        if write is not None:
            return None if write.change == "DELETED" else write.obj
        return self.unit_of_work.objects.get((kind, key))

    async def _save(self, tx: _StateTransaction, obj: StateObject, previous: int, change: ChangeType) -> int:
        staged = tx.writes.get(obj.ref)
        version = self.unit_of_work.next_version()
        # A second write of one object in one transaction still checks against the stored one.
        first_previous = staged.previous if staged is not None else previous
        tx.writes[obj.ref] = _Write(obj.model_copy(update={"version": version}), first_previous, change)
        return version

    async def _list(self, tx: _StateTransaction, kind: str | None, selector: LabelSelector) -> builtins.list[StateObject]:
        view = dict(self.unit_of_work.objects)
        for ref, write in tx.writes.items():
            if write.change == "DELETED":
                view.pop(ref, None)
            else:
                view[ref] = write.obj
        return [view[ref] for ref in sorted(view) if selects(view[ref], kind, selector)]

    async def _changes(self, tx: _StateTransaction, since: int) -> tuple[builtins.list[Change], int, int]:
        uow = self.unit_of_work
        start = bisect.bisect_right(uow.log, since, key=lambda c: c.object.version)
        return uow.log[start:], uow.compacted, uow.version

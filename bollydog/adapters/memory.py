"""In-memory persistence: the embedded default, and the fake to test handlers with.

Writes are staged per transaction and applied on commit, so a handler that raises leaves the
store as it was: the same semantics as the SQL adapters, without a database.
"""

from __future__ import annotations

import builtins
import copy
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from bollydog.models.protocol import Protocol, UnitOfWork

M = TypeVar("M", bound=BaseModel)


def _key_of(obj: BaseModel) -> str:
    key = getattr(obj, "iid", None)
    if not key:
        raise ValueError(f"{type(obj).__name__} has no 'iid' to store it by")
    return str(key)


def _check_fields(model: type[BaseModel], names: dict[str, Any]) -> None:
    unknown = sorted(set(names) - set(model.model_fields))
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(map(repr, unknown))}")


class _Staged:
    """A transaction: writes (None = delete) waiting for commit, per collection."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes: dict[str, dict[str, BaseModel | None]] = {}


class MemoryUnitOfWork(UnitOfWork):
    """Collections of pydantic objects in a dict, keyed by class name and ``iid``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.collections: dict[str, dict[str, BaseModel]] = {}
        self.commits = 0
        self.rollbacks = 0

    async def begin(self) -> _Staged:
        return _Staged()

    async def commit(self, transaction: _Staged) -> None:
        for name, writes in transaction.writes.items():
            collection = self.collections.setdefault(name, {})
            for key, obj in writes.items():
                if obj is None:
                    collection.pop(key, None)
                else:
                    collection[key] = obj
        self.commits += 1

    async def rollback(self, transaction: _Staged) -> None:
        transaction.writes.clear()
        self.rollbacks += 1


class MemoryProtocol(Protocol):
    """CRUD over :class:`MemoryUnitOfWork`; objects come back as copies, like rows from a DB."""

    unit_of_work: MemoryUnitOfWork

    def __init__(self, unit_of_work: UnitOfWork | None = None, **options: Any) -> None:
        super().__init__(unit_of_work if unit_of_work is not None else MemoryUnitOfWork(), **options)

    async def _view(self, model: type[M]) -> dict[str, M]:
        async with self.unit_of_work.operation() as tx:
            view = dict(self.unit_of_work.collections.get(model.__name__, {}))
            for key, obj in tx.writes.get(model.__name__, {}).items():
                if obj is None:
                    view.pop(key, None)
                else:
                    view[key] = obj
        # Key order, like a primary key. A collection is named after the class of its objects.
        return cast("dict[str, M]", dict(sorted(view.items())))

    async def _write(self, model_name: str, key: str, obj: BaseModel | None) -> None:
        stored = copy.deepcopy(obj)
        collect_events = getattr(stored, "collect_events", None)
        if callable(collect_events):
            # Events belong to the caller's object (published once, after commit): a stored copy
            # that kept them would hand them out again with every read.
            collect_events()
        async with self.unit_of_work.operation() as tx:
            tx.writes.setdefault(model_name, {})[key] = stored

    async def add(self, obj: M) -> M:
        await self._write(type(obj).__name__, _key_of(obj), obj)
        self.unit_of_work.saw(obj)
        return obj

    async def add_all(self, objs: list[M]) -> list[M]:
        for obj in objs:
            await self.add(obj)
        return objs

    async def get(self, model: type[M], iid: str) -> M | None:
        obj = (await self._view(model)).get(str(iid))
        return copy.deepcopy(obj) if obj is not None else None

    async def list(self, model: type[M], limit: int | None = None, offset: int = 0) -> list[M]:
        items = list((await self._view(model)).values())
        end = None if limit is None else offset + limit
        return [copy.deepcopy(o) for o in items[offset:end]]

    # ``list`` in the class body below is the method above: the builtin is spelled out.
    async def search(self, model: type[M], **filters: Any) -> builtins.list[M]:
        _check_fields(model, filters)
        return [
            copy.deepcopy(o)
            for o in (await self._view(model)).values()
            if all(getattr(o, k, None) == v for k, v in filters.items())
        ]

    async def update(self, model: type[M], iid: str, **values: Any) -> M | None:
        _check_fields(model, values)
        current = (await self._view(model)).get(str(iid))
        if current is None:
            return None
        updated = model.model_validate({**current.model_dump(), **values})
        await self._write(model.__name__, str(iid), updated)
        # Return the object that was seen (the store holds a copy), so that events the handler
        # raises on it are published, as with the SQL adapter.
        self.unit_of_work.saw(updated)
        return updated

    async def delete(self, model: type[M], iid: str) -> bool:
        if str(iid) not in await self._view(model):
            return False
        await self._write(model.__name__, str(iid), None)
        return True

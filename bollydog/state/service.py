"""StateService: the AppService that serves the state store's commands.

In a config file (the domain is the key; ``handlers`` and ``protocol`` have defaults)::

    state:
      app: !module bollydog.state.service.StateService
      kinds:                       # optional: kind -> pydantic model of its spec
        device: !module myapp.models.DeviceSpec

Without ``protocol`` the store lives in memory; for SQLite/PostgreSQL see
:class:`bollydog.state.sql.SqlStateProtocol`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from bollydog.builder import resolve_ref
from bollydog.errors import ConfigError
from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.models.service import AppService
from bollydog.state.messages import StateChanged
from bollydog.state.objects import InvalidObjectError
from bollydog.state.store import MemoryStateProtocol, MemoryStateUnitOfWork, StateProtocol

__all__ = ["StateService"]

#: Served by every StateService. The messages module is listed so that its Event is named
#: after this domain (the class is defined here), not after the ``bollydog`` built-ins.
HANDLERS = ("bollydog.state.messages", "bollydog.state.handlers")


class StateService(AppService):
    """Serves ``get``/``list``/``put``/``delete``/``changes``/``watch`` over a :class:`StateProtocol`.

    ``kinds``: when given, the only kinds stored, each with the pydantic model its ``spec`` must
    fit (a ``!module`` reference or a dotted path); without it any kind with any spec is stored.
    """

    default_handlers = HANDLERS

    def __init__(
        self,
        *,
        handlers: Iterable[str] = (),
        protocol: Protocol | None = None,
        unit_of_work: UnitOfWork | None = None,
        kinds: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if protocol is None:
            protocol = _protocol_for(unit_of_work, options.get("domain") or "state")
            unit_of_work = None
        if not isinstance(protocol, StateProtocol):
            raise ConfigError(
                f"{options.get('domain') or 'state'}.protocol: {type(protocol).__name__} is not a "
                "StateProtocol; use bollydog.state.store.MemoryStateProtocol or "
                "bollydog.state.sql.SqlStateProtocol"
            )
        super().__init__(handlers=handlers, protocol=protocol, unit_of_work=unit_of_work, **options)
        self.kinds: dict[str, type[BaseModel]] = {}
        for kind, ref in (kinds or {}).items():
            model = resolve_ref(ref, f"{self.domain}.kinds.{kind}")
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ConfigError(f"{self.domain}.kinds.{kind}: {model!r} is not a pydantic model class")
            self.kinds[str(kind)] = model
        self._watchers: set[asyncio.Queue[StateChanged]] = set()

    @property
    def store(self) -> StateProtocol:
        protocol = self.protocol
        assert isinstance(protocol, StateProtocol)  # checked in __init__
        return protocol

    def check_spec(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` validated by the kind's model (as JSON-ready data), when kinds are declared."""
        if not self.kinds:
            return spec
        model = self.kinds.get(kind)
        if model is None:
            raise InvalidObjectError(
                f"kind {kind!r} is not served here; known kinds: {', '.join(sorted(self.kinds))}",
                [{"field": "kind", "message": "unknown kind", "type": "unknown_kind"}],
            )
        try:
            return model.model_validate(spec).model_dump(mode="json")
        except ValidationError as exc:
            errors = [
                {"field": ".".join(["spec", *map(str, e["loc"])]), "message": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            raise InvalidObjectError(f"invalid spec for kind {kind!r}: {errors[0]['field']}: {errors[0]['message']}",
                                     errors) from None

    # -- watches in this process ----------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[StateChanged]:
        """A queue that receives every change published from now on; :meth:`unsubscribe` it."""
        queue: asyncio.Queue[StateChanged] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StateChanged]) -> None:
        self._watchers.discard(queue)

    def broadcast(self, event: StateChanged) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)


def _protocol_for(unit_of_work: UnitOfWork | None, domain: str) -> StateProtocol:
    """The state protocol a ``unit_of_work`` section alone implies."""
    if unit_of_work is None:
        return MemoryStateProtocol()
    if isinstance(unit_of_work, MemoryStateUnitOfWork):
        return MemoryStateProtocol(unit_of_work)
    if type(unit_of_work).__name__ == "SqlAlchemyUnitOfWork":
        from bollydog.state.sql import SqlStateProtocol  # SQLAlchemy only when configured

        return SqlStateProtocol(unit_of_work)
    raise ConfigError(
        f"{domain}.unit_of_work: {type(unit_of_work).__name__} has no state protocol; use "
        "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork or give a protocol section"
    )

"""Helpers for testing your own handlers fast, in memory, with the real hub.

    from bollydog.testing import running_hub

    async def test_place_order():
        async with running_hub("shop.handlers", domain="shop") as hub:
            assert await hub.execute(PlaceOrder(...)) == ...
            assert hub.published(OrderPlaced)  # events published while it ran

``FakeProtocol``/``FakeUnitOfWork`` are the in-memory adapters: writes staged per handler,
committed when it returns, discarded when it raises, like a database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from bollydog.adapters.memory import MemoryProtocol as FakeProtocol
from bollydog.adapters.memory import MemoryUnitOfWork as FakeUnitOfWork
from bollydog.context import current_session, handler_frame
from bollydog.models.base import BaseMessage, Event, Session
from bollydog.models.protocol import Protocol
from bollydog.models.service import AppService
from bollydog.service.app import HubService

__all__ = ["FakeProtocol", "FakeUnitOfWork", "RecordingHub", "running_hub", "handling", "as_user"]


class RecordingHub(HubService):
    """A HubService that remembers every message it dispatched, for assertions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatched: list[BaseMessage] = []

    async def dispatch(self, message: BaseMessage) -> Any:
        self.dispatched.append(message)
        return await super().dispatch(message)

    async def execute(self, message: BaseMessage) -> Any:
        # Record here too: execute() skips dispatch() for commands with a local handler.
        if self.registry.commands.get(type(message)) is not None:
            self.dispatched.append(message)
        return await super().execute(message)

    def published(self, event_type: type[Event] = Event) -> list[BaseMessage]:
        """Dispatched events of ``event_type`` (every event by default), in order."""
        return [m for m in self.dispatched if isinstance(m, event_type)]


@asynccontextmanager
async def running_hub(
    *handler_modules: str,
    domain: str = "test",
    protocol: Protocol | None = None,
    apps: Iterable[AppService] = (),
    handlers: Iterable[Any] = (),
    **hub_options: Any,
) -> AsyncIterator[RecordingHub]:
    """A started :class:`RecordingHub` serving ``handler_modules`` as app ``domain``.

    ``protocol`` defaults to a fresh :data:`FakeProtocol`; ``handlers`` registers functions
    directly (same app); ``apps`` adds fully built apps. Stopped (and drained) on exit.
    """
    app = AppService.create_from(
        domain=domain, handlers=handler_modules, protocol=protocol if protocol is not None else FakeProtocol()
    )
    hub = RecordingHub(apps=[app, *apps], **hub_options)
    if handlers:
        hub.register(*handlers, app=app)
    async with hub:
        yield hub


@contextmanager
def handling(message: BaseMessage, *, hub: HubService | None = None, app: AppService | None = None):
    """Call a handler function directly, with ``bollydog.globals`` set as the hub would."""
    protocol = app.protocol if app is not None else None
    token = handler_frame.set((message, app, protocol, hub))
    try:
        yield message
    finally:
        handler_frame.reset(token)


@contextmanager
def as_user(username: str, **data: Any):
    """Run the enclosed code with a session for ``username`` (what an entrypoint would set)."""
    token = current_session.set(Session(username=username, data=data))
    try:
        yield current_session.get()
    finally:
        current_session.reset(token)

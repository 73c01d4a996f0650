"""The transport port: where a message goes when no local handler serves it.

The hub runs a message locally when its handler is registered in this process. Otherwise it asks
the transport, which may deliver it to another process (Redis Streams) and bring the reply back.
The default, :class:`InProcessTransport`, knows no other process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bollydog.errors import NoHandlerError

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage
    from bollydog.service.app import HubService


class Transport:
    """Port for delivering messages to other processes.

    The composition root calls :meth:`add_remote` for every domain of the configuration that
    this process does not run, before the hub starts; :meth:`start` then begins consuming the
    messages of the domains this process does run (``hub.apps``).
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.remote: dict[type["BaseMessage"], set[str]] = {}  # message class -> domains

    def add_remote(self, domain: str, message_types: Iterable[type["BaseMessage"]]) -> None:
        """``domain`` runs in other processes and handles ``message_types``."""
        for message_type in message_types:
            self.remote.setdefault(message_type, set()).add(domain)

    async def start(self, hub: "HubService") -> None:
        """Connect; from now on, messages for hosted domains may arrive and go to ``hub``."""

    async def stop(self) -> None:
        """Stop receiving, wait for replies in flight, disconnect."""

    def serves(self, message_type: type["BaseMessage"]) -> bool:
        """True when another process handles ``message_type``."""
        return message_type in self.remote

    async def request(self, message: "BaseMessage") -> Any:
        """Deliver a Command elsewhere and return its result (or raise its error)."""
        raise NoHandlerError(
            f"no handler for {message.domain}.{message.name} "
            f"({type(message).__module__}.{type(message).__qualname__}): "
            "register one in a handlers module of a configured app"
        )

    async def publish(self, event: "BaseMessage") -> None:
        """Deliver an Event to the other processes that handle it (none by default)."""


class InProcessTransport(Transport):
    """One process: every message is handled here or has no handler."""

    def serves(self, message_type: type["BaseMessage"]) -> bool:
        return False

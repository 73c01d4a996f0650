"""The in-memory transport: a split deployment in one process, for tests.

:class:`MemoryBroker` stands for the Redis server; :class:`MemoryTransport` is a hub's
transport over it. Both are re-exported by :mod:`bollydog.testing`. No driver, no network.
"""

from __future__ import annotations

from bollydog.transport.memory.broker import MemoryBroker, PendingEntry, StoredEntry
from bollydog.transport.memory.transport import MemoryConsumer, MemoryOptions, MemoryTransport

__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryOptions", "MemoryTransport", "PendingEntry", "StoredEntry"]

"""The transactional outbox: events bound for other processes survive a crash after commit.

See :mod:`bollydog.outbox.relay` and docs/orchestration.md.
"""

from bollydog.outbox.relay import Outbox, OutboxRow, OutboxStore, recover_outboxes

__all__ = ["Outbox", "OutboxRow", "OutboxStore", "recover_outboxes"]

"""What a durable run leaves in the database: the run, and one row per step.

:class:`RunStore` is the port; the SQLAlchemy unit of work implements it with ``durable: true``
(tables ``bollydog_runs`` and ``bollydog_steps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["RUNNING", "DONE", "FAILED", "PARKED", "CANCELLED", "RunRecord", "RunStore", "StepRecord", "Status"]

Status = Literal["running", "done", "failed", "parked", "cancelled"]
RUNNING: Status = "running"
DONE: Status = "done"
FAILED: Status = "failed"
PARKED: Status = "parked"  # its code no longer matches its log: it waits for a person
CANCELLED: Status = "cancelled"
STATUSES: tuple[Status, ...] = (RUNNING, DONE, FAILED, PARKED, CANCELLED)


@dataclass(slots=True)
class RunRecord:
    """One run of a durable handler: the message that started it (wire fields, JSON), the code
    version it started with, where it is, how it ended (a JSON result or error), and which
    process holds it until when (:mod:`bollydog.durable.lease`; no owner once it ended)."""

    run_id: str
    name: str
    version: str
    input: str
    status: Status = RUNNING
    outcome: str | None = None
    created: float = 0.0
    updated: float = 0.0
    owner: str | None = None
    lease_until: float = 0.0
    takeovers: int = 0


@dataclass(slots=True)
class StepRecord:
    """Step ``step`` of run ``run_id``: what was yielded (``kind``: command, event, batch, wait;
    ``name``: the canonical name) and what came back (``ok``: ``value`` is the JSON result, else
    the JSON error fields)."""

    run_id: str
    step: int
    kind: str
    name: str
    ok: bool
    value: str


class RunStore(Protocol):
    """Runs and their steps. Writes without ``transaction`` commit on their own. Writes given
    an ``owner`` are fenced: they first check, in the same transaction, that ``owner`` still
    holds the running run, and raise :class:`~bollydog.errors.RunLeaseLostError` if not."""

    async def start(self, run: RunRecord) -> tuple[RunRecord, list[StepRecord]]:
        """Add ``run`` (held by its owner) unless its id exists; the stored run and its steps."""
        ...

    async def record(self, step: StepRecord, transaction: Any = None, owner: str | None = None) -> None:
        """Add ``step``; inside ``transaction`` (a child's own) when given."""
        ...

    async def finish(self, run_id: str, status: Status, outcome: str | None, owner: str | None = None) -> None:
        """Set the run's status and outcome; it has no owner after."""
        ...

    async def claim(self, run_ids: Sequence[str], owner: str, until: float, now: float,
                    gone: Sequence[str] = ()) -> list[str]:
        """Hold for ``owner`` until ``until`` (one takeover more each) those of the running runs
        ``run_ids`` that nobody holds at the moment of the write: no owner, a lease ended before
        ``now``, or an owner in ``gone``; those."""
        ...

    async def renew(self, run_ids: Sequence[str], owner: str, until: float) -> list[str]:
        """Extend ``owner``'s leases of those of ``run_ids`` it still holds; those."""
        ...

    async def release(self, owner: str, keep: Sequence[str] = ()) -> int:
        """Let go of the running runs ``owner`` holds, but those in ``keep``; how many."""
        ...

    async def leases(self) -> list[tuple[str, str | None, float, int]]:
        """``(run_id, owner, lease_until, takeovers)`` of every running run."""
        ...

    async def runs(self, statuses: Sequence[Status] = ()) -> list[RunRecord]:
        """Runs (of these statuses), oldest first."""
        ...

    async def run(self, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
        """A run and its steps, or None."""
        ...

    async def forget_steps(self, run_id: str, from_step: int) -> int:
        """Delete the steps ``from_step`` on (a resumed run dispatches them again); how many."""
        ...

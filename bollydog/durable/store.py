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
    version it started with, where it is, and how it ended (a JSON result or error)."""

    run_id: str
    name: str
    version: str
    input: str
    status: Status = RUNNING
    outcome: str | None = None
    created: float = 0.0
    updated: float = 0.0


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
    """Runs and their steps. Writes without ``transaction`` commit on their own."""

    async def start(self, run: RunRecord) -> tuple[RunRecord, list[StepRecord]]:
        """Add ``run`` unless its id exists; the stored run and its steps, in order."""
        ...

    async def record(self, step: StepRecord, transaction: Any = None) -> None:
        """Add ``step``; inside ``transaction`` (a child's own) when given."""
        ...

    async def finish(self, run_id: str, status: Status, outcome: str | None) -> None:
        """Set the run's status and outcome."""
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

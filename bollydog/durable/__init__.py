"""Durable generator handlers: ``@durable`` orchestrations that resume after a crash.

See :mod:`bollydog.durable.runner` and docs/orchestration.md.
"""

from bollydog.durable.runner import durable
from bollydog.durable.store import RunRecord, RunStore, StepRecord
from bollydog.hub.steps import NewId, Now, Random, Sleep

__all__ = ["NewId", "Now", "Random", "RunRecord", "RunStore", "Sleep", "StepRecord", "durable"]

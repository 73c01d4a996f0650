"""Durable generator handlers: ``@durable`` orchestrations that resume after a crash.

See :mod:`bollydog.durable.runner` and docs/orchestration.md.
"""

from bollydog.durable.runner import durable, recover_runs
from bollydog.durable.store import RunRecord, RunStore, StepRecord

__all__ = ["RunRecord", "RunStore", "StepRecord", "durable", "recover_runs"]

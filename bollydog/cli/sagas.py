"""``bollydog sagas``: the durable runs kept in the config's databases (see docs/orchestration.md).

``list`` and ``show`` read; ``resume`` sets a run back to running (optionally forgetting its steps
from one on, so that they are dispatched again) and, with ``--now``, starts the hub here so that
it runs; ``cancel`` sets it aside for good: recovery never picks it up again.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from bollydog.cli.exits import EXIT_BAD_INPUT, EXIT_HANDLER_FAILED, fail, fail_with, run
from bollydog.errors import BollydogError

T = TypeVar("T")

_config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), default=None, help="Configuration file (YAML or JSON)."
)


@click.group()
def sagas() -> None:
    """Durable runs (@durable handlers): list, show, resume, cancel."""


def _stores(config: str | None) -> tuple[Any, list[tuple[Any, Any]]]:
    """The hub built from ``config`` (not started), and each (unit of work, run store) once."""
    from bollydog.bootstrap import build
    from bollydog.durable.runner import run_store_of

    try:
        # A client of the transport, as execute is: resume --now runs here, never others' work.
        hub = build(config, entrypoints=False, consumers=False).hub
    except BollydogError as exc:
        fail_with(exc)
    found: list[tuple[Any, Any]] = []
    for app in hub.apps.values():
        unit_of_work = getattr(app.protocol, "unit_of_work", None)
        store = run_store_of(unit_of_work)
        if store is not None and all(store is not s for _, s in found):
            found.append((unit_of_work, store))
    if not found:
        fail(
            "no app of this config keeps durable runs: give an app a unit_of_work "
            "'bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork' with 'durable: true'",
            EXIT_BAD_INPUT,
        )
    return hub, found


def _with_stores(config: str | None, work: Callable[[list[Any]], Awaitable[T]]) -> T:
    _, found = _stores(config)

    async def main() -> T:
        for unit_of_work, _ in found:
            await unit_of_work.connect()
        try:
            return await work([store for _, store in found])
        finally:
            for unit_of_work, _ in found:
                await unit_of_work.disconnect()

    return run(main)


async def _find(stores: list[Any], run_id: str) -> tuple[Any, Any, list[Any]]:
    for store in stores:
        found = await store.run(run_id)
        if found is not None:
            return store, found[0], found[1]
    fail(f"no durable run {run_id!r} (bollydog sagas list shows them)", EXIT_BAD_INPUT)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


@sagas.command(name="list")
@_config_option
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["running", "done", "failed", "parked", "cancelled"]),
              help="Only runs with this status; repeat for several.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def sagas_list(config: str | None, statuses: tuple[str, ...], as_json: bool) -> None:
    """List runs, oldest first: id, status, message name, last change."""

    async def work(stores: list[Any]) -> list[Any]:
        return [r for store in stores for r in await store.runs(list(statuses))]

    runs = _with_stores(config, work)
    for record in runs:
        if as_json:
            click.echo(json.dumps({"run_id": record.run_id, "status": record.status, "name": record.name,
                                   "version": record.version, "created": record.created, "updated": record.updated,
                                   "owner": record.owner, "lease_until": record.lease_until}))
        else:
            click.echo(f"{record.run_id}  {record.status:<9}  {record.name}  {_when(record.updated)}")
    if not as_json:
        click.echo(f"{len(runs)} run(s)", err=True)


@sagas.command(name="show")
@_config_option
@click.argument("run_id")
def sagas_show(config: str | None, run_id: str) -> None:
    """A run as JSON: its message, status, outcome and every step."""

    async def work(stores: list[Any]) -> dict[str, Any]:
        _, record, steps = await _find(stores, run_id)
        return {
            "run_id": record.run_id, "name": record.name, "version": record.version, "status": record.status,
            "input": json.loads(record.input), "outcome": json.loads(record.outcome) if record.outcome else None,
            "created": record.created, "updated": record.updated,
            "owner": record.owner, "lease_until": record.lease_until,
            "steps": [{"step": s.step, "kind": s.kind, "name": s.name, "ok": s.ok, "value": json.loads(s.value)}
                      for s in steps],
        }

    click.echo(json.dumps(_with_stores(config, work), indent=2, ensure_ascii=False))


@sagas.command(name="resume")
@_config_option
@click.argument("run_id")
@click.option("--from-step", type=click.IntRange(min=0), default=None,
              help="Forget the steps from this one on: they are dispatched again.")
@click.option("--now", is_flag=True, help="Start the hub here (entrypoints excluded) and wait for the run.")
def sagas_resume(config: str | None, run_id: str, from_step: int | None, now: bool) -> None:
    """Set a parked, failed or cancelled run back to running; the next start (or --now) resumes it."""
    from bollydog.durable.lease import is_gone
    from bollydog.durable.store import DONE, RUNNING

    async def work(stores: list[Any]) -> int:
        store, record, _ = await _find(stores, run_id)
        if record.status == DONE:
            fail(f"run {run_id} is done; there is nothing to resume", EXIT_BAD_INPUT)
        if record.status == RUNNING and record.owner is not None and record.lease_until >= time.time() \
                and not is_gone(record.owner):
            fail(f"run {run_id} is running in {record.owner} (lease until {_when(record.lease_until)}); "
                 "cancel it first to resume it from a step", EXIT_BAD_INPUT)
        forgotten = await store.forget_steps(run_id, from_step) if from_step is not None else 0
        await store.finish(run_id, RUNNING, None)
        return int(forgotten)

    forgotten = _with_stores(config, work)
    click.echo(f"run {run_id} is running again" + (f"; {forgotten} step(s) forgotten" if forgotten else ""))
    if now:
        _run_now(config, run_id)


def _run_now(config: str | None, run_id: str) -> None:
    hub, found = _stores(config)

    async def main() -> Any:
        async with hub:  # starting resumes every run left running, this one included
            await hub.drain(hub.shutdown_grace if hub.shutdown_grace > 0 else 10.0)
            for _, store in found:
                result = await store.run(run_id)
                if result is not None:
                    return result[0]
        return None

    record = run(main)
    if record is not None and record.status == "running" and record.owner is not None:
        fail(f"run {run_id} is held by {record.owner}, another process serving it: it goes on there",
             EXIT_HANDLER_FAILED)
    if record is None or record.status != "done":
        status = record.status if record is not None else "gone"
        fail(f"run {run_id} is {status}: {record.outcome if record is not None else ''}", EXIT_HANDLER_FAILED)
    click.echo(record.outcome)


@sagas.command(name="cancel")
@_config_option
@click.argument("run_id")
def sagas_cancel(config: str | None, run_id: str) -> None:
    """Set a run aside: it is not resumed again (no compensation runs; resume undoes it)."""
    from bollydog.durable.store import CANCELLED, DONE

    async def work(stores: list[Any]) -> None:
        store, record, _ = await _find(stores, run_id)
        if record.status == DONE:
            fail(f"run {run_id} is done; it cannot be cancelled", EXIT_BAD_INPUT)
        await store.finish(run_id, CANCELLED, record.outcome)

    _with_stores(config, work)
    click.echo(f"run {run_id} cancelled")

"""Which process runs a durable run: a lease per run, held by one process at a time.

A run's row names its ``owner`` and the time its lease ends (``lease_until``, wall-clock
seconds). The process that starts a run holds it; a :class:`Keeper` per run store and process
renews the leases of the runs it holds, every third of ``BOLLYDOG_DURABLE_LEASE``, and takes
over the runs whose lease ran out: their process died, was stopped, or lost its database.

- **Taking a run** is a compare-and-set on the row's owner and lease end, so two processes
  never both take it. A process that is sent a run another process holds (a consumer group
  delivered it again) waits until that run ends, then answers as it ended, or until its lease
  runs out, then takes it over.
- **Fenced writes**: every step a run records, and its end, first checks in the same
  transaction that this process still holds the run. A process that lost its lease (it was
  paused past the lease, or cut off from the database) cannot commit a step's side effect: the
  child's transaction is rolled back with :class:`~bollydog.errors.RunLeaseLostError`, and the
  keeper cancels what still runs there at its next renewal.
- **A dead process on this machine** is recognised at once: an owner is
  ``host/kernel/pid/nonce``, and when ``kernel`` (boot id and pid namespace) is this process's,
  an owner whose pid no longer runs, or has this process's pid with another nonce, is gone. Its
  runs are taken without waiting for the lease; on another machine, the lease decides.
- **Stopping** releases the runs a process still holds, so that another takes them over at its
  next renewal instead of after the lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bollydog.durable.store import RUNNING, RunRecord, RunStore, StepRecord
from bollydog.errors import QueueFullError
from bollydog.settings import get_settings

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage
    from bollydog.types import HubT

__all__ = ["Keeper", "Keepers", "keeper_of", "new_owner", "is_gone"]

log = logging.getLogger("bollydog.durable")

#: Owners of this process that have not stopped: their pid is ours, so only this tells them apart.
_LIVE: set[str] = set()


def _kernel() -> str:
    """Boot id and pid namespace: pids compare only between processes with the same one."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""  # not Linux, or no /proc: the lease alone decides
    return f"{boot_id}:{namespace.removeprefix('pid:[').removesuffix(']')}"


_KERNEL = _kernel()


def new_owner() -> str:
    """A new owner name for this process: ``host/kernel/pid/nonce``."""
    owner = f"{socket.gethostname()}/{_KERNEL}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
    _LIVE.add(owner)
    return owner


def is_gone(owner: str) -> bool:
    """True when ``owner`` is known to be no process that runs: one of this machine and pid
    namespace whose pid is dead, or an earlier process that had this process's pid."""
    parts = owner.split("/")
    if len(parts) != 4 or not _KERNEL or parts[1] != _KERNEL or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    if pid == os.getpid():
        return owner not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it runs, as another user
        return False
    return False  # it runs (or its pid was reused: the lease decides)


class Keeper:
    """This process's hold on the runs of one store: takes runs, renews their leases, takes
    over the runs whose lease ran out, releases what it holds when it stops."""

    def __init__(self, hub: "HubT", store: RunStore, lease: float) -> None:
        self.hub = hub
        self.store = store
        self.lease = lease
        self.owner = new_owner()
        #: Runs held here: the task running each, or None while it waits in the hub's queue.
        self.held: dict[str, asyncio.Task[Any] | None] = {}

    @property
    def interval(self) -> float:
        return self.lease / 3

    def until(self) -> float:
        return time.time() + self.lease

    def claimable(self, run: RunRecord, now: float) -> bool:
        return run.owner is None or run.lease_until < now or is_gone(run.owner)

    async def take(self, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
        """Hold ``run_id`` here: at once if nobody holds it, else once its lease runs out.
        The run as it is then (its steps read after taking it), or as it ended elsewhere."""
        while True:
            found = await self.store.run(run_id)
            if found is None or found[0].status != RUNNING or found[0].owner == self.owner:
                return found
            run = found[0]
            now = time.time()
            if self.claimable(run, now):
                if await self.store.claim(run_id, self.owner, self.until(), run.owner, run.lease_until):
                    return await self.store.run(run_id)
                continue  # another process took it first: look again
            await asyncio.sleep(min(max(run.lease_until - now, 0.01), self.interval))

    def hold(self, run_id: str, task: asyncio.Task[Any] | None) -> None:
        self.held[run_id] = task

    def drop(self, run_id: str, task: asyncio.Task[Any] | None = None) -> None:
        """Stop renewing ``run_id`` (held by ``task``, or waiting to run when None)."""
        if self.held.get(run_id, False) is task:
            del self.held[run_id]

    async def renew(self) -> None:
        """Renew the leases of the runs held here; stop what runs of one that is no longer."""
        if not self.held:
            return
        held = list(self.held)
        lost = await self.store.renew(held, self.owner, self.until())
        for run_id in lost:
            task = self.held.pop(run_id, None)
            log.warning("durable run %s was taken over by another process or set aside; "
                        "its execution here is cancelled", run_id)
            if task is not None:
                task.cancel(f"durable run {run_id} is no longer held by this process")

    async def take_over(self) -> list[RunRecord]:
        """Take the runs nobody holds: their lease ran out (this process's own included: a run
        cut by its deadline is not renewed), or their process is gone."""
        taken: list[RunRecord] = []
        now = time.time()
        for run in await self.store.runs([RUNNING]):
            if run.run_id in self.held or not self.claimable(run, now):
                continue
            if await self.store.claim(run.run_id, self.owner, self.until(), run.owner, run.lease_until):
                self.held[run.run_id] = None
                taken.append(run)
        return taken

    async def release(self) -> None:
        """Let go of every run held here: another process takes them over at once."""
        _LIVE.discard(self.owner)
        self.held.clear()
        try:
            await self.store.release(self.owner)
        except Exception as exc:  # the database is gone: the leases run out instead
            log.warning("durable runs held by %s not released (%s): they are taken over after the lease",
                        self.owner, exc)


#: The keeper of each run store (an object of the application's unit of work).
_KEEPERS: "weakref.WeakKeyDictionary[Any, Keeper]" = weakref.WeakKeyDictionary()


def keeper_of(hub: "HubT", store: RunStore) -> Keeper:
    """The keeper of ``store`` in this process (made on first use)."""
    keeper = _KEEPERS.get(store)
    if keeper is None:
        keeper = _KEEPERS[store] = Keeper(hub, store, get_settings().durable_lease)
    return keeper


class Keepers:
    """The keepers of a hub's run stores, and the task that renews and takes over."""

    def __init__(self, hub: "HubT", message_of: Callable[["HubT", RunRecord], "BaseMessage"]) -> None:
        self.hub = hub
        self.message_of = message_of
        self.keepers: list[Keeper] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, stores: list[RunStore]) -> int:
        """Take over the runs an earlier process left, and renew from now on; how many were taken."""
        self.keepers = [keeper_of(self.hub, store) for store in stores]
        taken = await self.tick()
        if self.keepers:
            self._task = asyncio.create_task(self._loop(), name="bollydog-durable-leases")
        if taken:
            log.info("resuming %d durable run(s) another process left", taken)
        return taken

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for keeper in self.keepers:
            await keeper.release()
            _KEEPERS.pop(keeper.store, None)
        self.keepers = []

    async def tick(self) -> int:
        taken = 0
        for keeper in self.keepers:
            await keeper.renew()
            runs = await keeper.take_over()
            await self._resume(keeper, runs)
            taken += len(runs)
        return taken

    async def _loop(self) -> None:
        interval = min(k.interval for k in self.keepers)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception as exc:  # the database is away for a moment: the next tick retries
                log.warning("durable leases not renewed: %s: %s", type(exc).__name__, exc)

    async def _resume(self, keeper: Keeper, runs: list[RunRecord]) -> None:
        overflow: list[BaseMessage] = []
        for run in runs:
            try:
                message = self.message_of(self.hub, run)
            except ValueError as exc:  # WireError included
                log.error("durable run %s of %s cannot be rebuilt, left as it is: %s", run.run_id, run.name, exc)
                keeper.drop(run.run_id)
                continue
            message.state.add_done_callback(_settled(keeper, run.run_id))
            try:
                await self.hub.put_message(message)
            except QueueFullError:
                overflow.append(message)
        if overflow:  # more than the queue holds: the rest run beside it, a few at a time
            self.hub.add_future(_resume_directly(self.hub, overflow))


def _settled(keeper: Keeper, run_id: str) -> Callable[[asyncio.Future[Any]], None]:
    def settled(state: asyncio.Future[Any]) -> None:
        if not state.cancelled():
            state.exception()  # the run's own outcome is recorded; this one is only observed
        keeper.drop(run_id)  # if it never ran (it expired in the queue): not renewed for ever

    return settled


async def _resume_directly(hub: "HubT", messages: list["BaseMessage"]) -> None:
    limit = asyncio.Semaphore(_OVERFLOW_CONCURRENCY)

    async def resume(message: "BaseMessage") -> None:
        async with limit:
            try:
                await hub.execute(message)
            except Exception as exc:  # recorded in the run already; the line says which
                log.warning("resumed run %s ended with %s: %s", message.iid, type(exc).__name__, exc)

    await asyncio.gather(*(resume(m) for m in messages))


#: Runs resumed at once beyond the hub queue's room.
_OVERFLOW_CONCURRENCY = 16

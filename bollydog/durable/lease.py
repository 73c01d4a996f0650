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
  child's transaction is rolled back with :class:`~bollydog.errors.RunLeaseLostError`. A run
  whose renewal found it lost stops at its next step, with that error and without compensating
  (the run goes on, or stays aside, where it now is).
- **A dead process on this machine** is recognised at once: an owner is
  ``host/kernel/pid/nonce``, and when ``kernel`` (boot id and pid namespace) is this process's,
  an owner whose pid no longer runs, or has this process's pid with another nonce, is gone. Its
  runs are taken without waiting for the lease; on another machine, the lease decides.
- **Stopping** releases the runs a process still holds, so that another takes them over at its
  next renewal instead of after the lease.
- **A run that never finishes** (each holder dies in it, or its deadline cuts it) is parked
  once it was taken over ``BOLLYDOG_DURABLE_MAX_TAKEOVERS`` times, instead of being resumed for
  ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import typing
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bollydog.durable.store import PARKED, RUNNING, RunRecord, RunStore, StepRecord
from bollydog.errors import QueueFullError, RunMismatchError
from bollydog.settings import get_settings
from bollydog.transport import wire

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage
    from bollydog.types import HubT

__all__ = ["Holder", "Keeper", "Keepers", "keeper_of", "new_owner", "is_gone"]

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


class Holder(typing.Protocol):
    """A run executing here (``bollydog.durable.runner``): told when its lease is lost."""

    lost: bool


class Keeper:
    """This process's hold on the runs of one store: takes runs, renews their leases, takes
    over the runs whose lease ran out, releases what it holds when it stops."""

    def __init__(self, hub: "HubT", store: RunStore, lease: float, max_takeovers: int) -> None:
        self.hub = hub
        self.store = store
        self.lease = lease
        self.max_takeovers = max_takeovers
        self.owner = new_owner()
        #: Runs held here: the run executing each, or None while it waits in the hub's queue.
        self.held: dict[str, Holder | None] = {}

    @property
    def interval(self) -> float:
        return self.lease / 3

    def until(self) -> float:
        return time.time() + self.lease

    def claimable(self, owner: str | None, lease_until: float, now: float) -> bool:
        return owner is None or lease_until < now or is_gone(owner)

    async def take(self, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
        """Hold ``run_id`` here: at once if nobody holds it, else once its lease runs out.
        The run as it is then (its steps read after taking it), or as it ended elsewhere."""
        while True:
            found = await self.store.run(run_id)
            if found is None or found[0].status != RUNNING:
                return found
            run = found[0]
            now = time.time()
            if run.owner == self.owner and run.lease_until >= now:
                return found
            if self.claimable(run.owner, run.lease_until, now) or run.owner == self.owner:
                # An owner still within its lease is claimable only because its process is gone.
                gone = [run.owner] if run.owner is not None and run.lease_until >= now else []
                if await self.store.claim([run_id], self.owner, self.until(), now, gone):
                    return await self.store.run(run_id)
                continue  # another process took it first: look again
            await asyncio.sleep(min(max(run.lease_until - now, 0.01), self.interval))

    def hold(self, run_id: str, holder: Holder | None) -> None:
        self.held[run_id] = holder

    def drop(self, run_id: str, holder: Holder | None = None) -> None:
        """Stop renewing ``run_id`` (held by ``holder``, or waiting to run when None)."""
        if run_id in self.held and self.held[run_id] is holder:
            del self.held[run_id]

    async def renew(self) -> None:
        """Renew the leases of the runs held here; a run whose lease is lost (taken over, set
        aside, ended elsewhere) is told, and stops at its next step."""
        if not self.held:
            return
        held = list(self.held)
        renewed = set(await self.store.renew(held, self.owner, self.until()))
        for run_id in held:
            if run_id in renewed or run_id not in self.held:
                continue  # renewed, or it ended here meanwhile
            holder = self.held.pop(run_id)
            log.warning("durable run %s is no longer held by this process (taken over by another, or "
                        "set aside); it stops here at its next step", run_id)
            if holder is not None:
                holder.lost = True

    async def take_over(self) -> list[RunRecord]:
        """Take the runs nobody holds: their lease ran out (this process's own included: a run
        cut by its deadline is not renewed), or their process is gone. A run taken over more
        than ``max_takeovers`` times is parked instead: each of its holders died or was cut."""
        now = time.time()
        candidates: list[str] = []
        gone: set[str] = set()
        for run_id, owner, lease_until, takeovers in await self.store.leases():
            if run_id in self.held or not self.claimable(owner, lease_until, now):
                continue
            if takeovers >= self.max_takeovers:
                await self._park(run_id, takeovers)
                continue
            candidates.append(run_id)
            if owner is not None and lease_until >= now:
                gone.add(owner)  # claimable while its lease runs: its process is gone
        claimed: set[str] = set()
        try:
            for chunk in range(0, len(candidates), _CLAIM_CHUNK):  # bounded statements (bound parameters)
                taken = await self.store.claim(candidates[chunk:chunk + _CLAIM_CHUNK], self.owner, self.until(),
                                               now, sorted(gone))
                claimed.update(taken)
                for run_id in taken:
                    self.held[run_id] = None
            return [run for run in await self.store.runs([RUNNING]) if run.run_id in claimed] if claimed else []
        except BaseException:  # what was taken is not resumed here: left to its lease, not renewed
            for run_id in claimed:
                self.drop(run_id)
            raise

    async def _park(self, run_id: str, takeovers: int) -> None:
        error = RunMismatchError(
            f"run {run_id} was taken over {takeovers} times without finishing (its holders died or "
            f"were cut by its expire_time; BOLLYDOG_DURABLE_MAX_TAKEOVERS); it is parked: fix the "
            "cause, then bollydog sagas resume it", run_id=run_id, step=None,
        )
        log.error("%s", error)
        await self.store.finish(run_id, PARKED, json.dumps(wire.encode_error(error)))

    async def release(self) -> None:
        """Let go of the runs held here that no longer execute: another process takes them
        over at once. A run still executing (its task outlived the hub's grace) is left to
        its lease."""
        _LIVE.discard(self.owner)
        executing = [run_id for run_id, holder in self.held.items() if holder is not None]
        self.held.clear()
        try:
            await self.store.release(self.owner, executing)
        except Exception as exc:  # the database is gone: the leases run out instead
            log.warning("durable runs held by %s not released (%s): they are taken over after the lease",
                        self.owner, exc)


#: Runs claimed in one statement at most.
_CLAIM_CHUNK = 500

#: The keeper of each run store (an object of the application's unit of work).
_KEEPERS: "weakref.WeakKeyDictionary[Any, Keeper]" = weakref.WeakKeyDictionary()


def keeper_of(hub: "HubT", store: RunStore) -> Keeper:
    """The keeper of ``store`` in this process (made on first use)."""
    keeper = _KEEPERS.get(store)
    if keeper is None:
        settings = get_settings()
        keeper = _KEEPERS[store] = Keeper(hub, store, settings.durable_lease, settings.durable_max_takeovers)
    return keeper


class Keepers:
    """The keepers of a hub's run stores, and the two tasks that renew leases and take over
    runs: apart, so that a claim that waits on the database never delays a renewal."""

    def __init__(self, hub: "HubT", message_of: Callable[["HubT", RunRecord], "BaseMessage"]) -> None:
        self.hub = hub
        self.message_of = message_of
        self.keepers: list[Keeper] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, stores: list[RunStore]) -> None:
        """Renew from now on; then take over the runs an earlier process left, and from now on."""
        self.keepers = [keeper_of(self.hub, store) for store in stores]
        if not self.keepers:
            return
        interval = min(k.interval for k in self.keepers)
        self._tasks.append(asyncio.create_task(self._every(interval, self._renew), name="bollydog-durable-renew"))
        taken = await self._take_over()
        self._tasks.append(asyncio.create_task(self._every(interval, self._take_over), name="bollydog-durable-take"))
        if taken:
            log.info("resuming %d durable run(s) another process left", taken)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for keeper in self.keepers:
            await keeper.release()
            _KEEPERS.pop(keeper.store, None)
        self.keepers = []

    async def _renew(self) -> None:
        for keeper in self.keepers:
            try:
                await keeper.renew()
            except Exception as exc:  # the database is away for a moment: the next turn retries
                log.warning("durable leases not renewed: %s: %s", type(exc).__name__, exc)

    async def _take_over(self) -> int:
        taken = 0
        for keeper in self.keepers:
            try:
                runs = await keeper.take_over()
            except Exception as exc:
                log.warning("durable runs not taken over: %s: %s", type(exc).__name__, exc)
                continue
            await self._resume(keeper, runs)
            taken += len(runs)
        return taken

    @staticmethod
    async def _every(interval: float, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval)
            await work()

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
            except Exception as exc:  # the hub is stopping: left to the lease (another process)
                log.warning("durable run %s not resumed here: %s: %s", run.run_id, type(exc).__name__, exc)
                keeper.drop(run.run_id)
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

"""Durable generator handlers: ``@durable`` orchestrations that survive a crash.

A durable handler is an ordinary async-generator handler, marked::

    @durable(version="1")
    async def fulfil(command: Fulfil):
        reserved = yield Reserve(order_id=command.order_id)
        ...

Each run (one per message id) is recorded in its app's unit of work (``durable: true`` on the
SQLAlchemy adapter): the message that started it, the code version, and one step per yield of a
Command, an Event, a list of messages or a :class:`~bollydog.hub.waiting.WaitFor`, with what came
back (the JSON form of the result, or the error's class and fields). A run that did not finish
(the process died, the hub was cut at shutdown) is resumed by the next start of a hub with that
store: the handler runs again from its recorded message; recorded steps are answered from the
log (results sent back, errors thrown back in as the same class) without dispatching anything;
the first step not in the log is dispatched for real, and the run goes on.

- Exactly once for a Command of the same app (same unit of work): its step row is written in the
  Command's own transaction, so the side effect and the record commit together. Other children
  (another app, another process, a list) are recorded after they answered: at least once, each
  sent with a deterministic id (run id + step index) its handler can recognise.
- A handler receives every step's result in its JSON form (what the log holds), live or
  replayed, so both runs see the same values. WaitFor steps give back the Events themselves.
- A replay that meets a yield other than the recorded one (another kind or message), or a run
  recorded under another ``version`` (not one the handler ``replays``), is parked
  (:class:`~bollydog.errors.RunMismatchError`): it waits for a person (``bollydog sagas``),
  nothing is dispatched.
- Compensation is plain ``try/except`` in the handler: a failed step's error is thrown back in,
  live and replayed alike.
- One process at a time runs a run: it holds the run's lease (:mod:`bollydog.durable.lease`),
  and each step it records is fenced by it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bollydog.context import current_session, get_session, get_app, get_hub
from bollydog.durable.lease import Keeper, Keepers, keeper_of
from bollydog.durable.store import DONE, FAILED, PARKED, RUNNING, RunRecord, RunStore, Status, StepRecord
from bollydog.encoding import dumps_text, jsonable
from bollydog.errors import ConfigError, HandlerRegistrationError, RunLeaseLostError, RunMismatchError
from bollydog.hub.steps import LocalStep
from bollydog.hub.waiting import WaitFor
from bollydog.models.base import BaseMessage, Event
from bollydog.transport import wire

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.protocol import UnitOfWork
    from bollydog.types import HubT

__all__ = ["Claim", "current_claim", "durable", "durable_keepers", "run_store_of"]

log = logging.getLogger("bollydog.durable")

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute ``@durable`` sets on a handler: its code version.
DURABLE_ATTRIBUTE = "__bollydog_durable__"


@dataclass(slots=True)
class Claim:
    """A step a child Command of the same unit of work records in its own transaction: the
    first scope of ``unit_of_work`` entered while it is current takes it (see the SQLAlchemy
    adapter's scope), fenced by ``owner``'s lease; ``recorded`` once that transaction committed."""

    unit_of_work: "UnitOfWork"
    store: RunStore
    owner: str
    run_id: str
    step: int
    kind: str
    name: str
    taken: bool = False
    recorded: bool = False

    def record(self, result: Any) -> StepRecord:
        return StepRecord(self.run_id, self.step, self.kind, self.name, True, dumps_text(jsonable(result)))


#: The step being dispatched by a durable run, for the child's scope to record.
current_claim: ContextVar[Claim | None] = ContextVar("bollydog.durable.claim", default=None)


def durable(func: F | None = None, *, version: str = "1", replays: Iterable[str] = ()) -> Any:
    """Mark an async-generator handler durable (``@durable`` or ``@durable(version="2")``).

    ``version`` is stored with each run; change it when a change of the handler's steps would
    not replay an older run's log: runs recorded under another version are parked, not replayed.
    ``replays`` is the patch marker: older versions whose runs this code replays (its first
    steps yield what theirs did), e.g. ``@durable(version="2", replays=("1",))``.
    """
    if not isinstance(version, str) or not version:
        raise TypeError(f"@durable version= takes a non-empty string, got {version!r}")
    accepted = (replays,) if isinstance(replays, str) else tuple(replays)
    if isinstance(replays, str) or not all(isinstance(v, str) for v in accepted):
        raise TypeError(f"@durable replays= takes a tuple of version strings, got {replays!r}")

    def decorate(handler: F) -> F:
        if not inspect.isasyncgenfunction(handler):
            raise HandlerRegistrationError(
                f"@durable applies to async-generator handlers; {handler.__module__}.{handler.__qualname__} is not one"
            )

        run = _replaying(handler, version, frozenset(accepted))
        setattr(run, DURABLE_ATTRIBUTE, version)
        return run  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _replaying(handler: Callable[..., Any], version: str, replays: frozenset[str]) -> Callable[..., Any]:
    """The durable form of ``handler``: an async generator between the handler and the hub's
    orchestration driver. Recorded steps are answered from the log; the others go out to the
    driver, and what comes back is recorded before it is sent in. ``functools.wraps`` keeps the
    handler's name, module and signature, so discovery and injection see the handler itself."""

    @functools.wraps(handler)
    async def run(message: BaseMessage, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        runner = _Run(message, version, replays)
        active = _active_runs(runner.store)
        while (running := active.get(runner.run_id)) is not None:
            # Running in this process already (resumed at start, then delivered again by the
            # transport): its outcome is this one's.
            ok, value = await asyncio.shield(running)
            if ok is True:
                yield value
                return
            if ok is False:
                raise value
            # it was cut without an outcome: this delivery runs it
        outcome: asyncio.Future[tuple[bool | None, Any]] = asyncio.get_running_loop().create_future()
        active[runner.run_id] = outcome
        inner = _drive(runner, handler(message, *args, **kwargs))
        reply: Any = None
        error: BaseException | None = None
        try:
            while True:  # ``yield from`` for async generators: results and failures go in
                try:
                    item = await (inner.athrow(error) if error is not None else inner.asend(reply))
                except StopAsyncIteration:
                    return
                reply, error = None, None
                try:
                    reply = yield item
                except BaseException as exc:  # a failure, a cancellation, a close: for the run
                    error = exc
        finally:
            await inner.aclose()
            runner.keeper.drop(runner.run_id, runner)
            if active.get(runner.run_id) is outcome:
                del active[runner.run_id]
            if not outcome.done():
                outcome.set_result(runner.outcome)

    return run


def _active_runs(store: RunStore) -> dict[str, "asyncio.Future[tuple[bool | None, Any]]"]:
    """The runs of ``store`` running in this process, by id, each with its outcome to come."""
    active = _ACTIVE.get(store)
    if active is None:
        active = _ACTIVE[store] = {}
    return active


#: Per run store (an object of the application's unit of work).
_ACTIVE: "weakref.WeakKeyDictionary[Any, dict[str, asyncio.Future[tuple[bool | None, Any]]]]" = (
    weakref.WeakKeyDictionary()
)


async def _drive(runner: "_Run", inner: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
    """One execution of a run: answers recorded steps, hands the others to the hub's driver."""
    await runner.open()
    if runner.completed is not _NOT_DONE:  # delivered again after it finished: same answer
        await inner.aclose()
        runner.outcome = (True, runner.completed)
        yield runner.completed
        return
    reply: Any = None
    error: BaseException | None = None
    index = 0
    try:
        while True:
            try:
                item = await (inner.athrow(error) if error is not None else inner.asend(reply))
            except StopAsyncIteration:
                await runner.finish()
                runner.outcome = (True, json.loads(dumps_text(jsonable(runner.last))))
                return
            except Exception as exc:
                await runner.failed(exc)
                runner.outcome = (False, exc)
                raise
            reply, error = None, None
            kind = _kind(item)
            if kind is None:  # a partial result: streamed live and replayed alike
                runner.last = item
                yield item
                continue
            step, index = index, index + 1
            name = runner.name_of(kind, item)
            recorded = runner.steps.get(step)
            if recorded is not None:
                if isinstance(item, WaitFor):
                    item.cancel()  # answered from the log: it waits for nothing
                if (recorded.kind, recorded.name) != (kind, name):
                    mismatch = RunMismatchError(
                        f"run {runner.run_id} of {runner.name}: step {step} yields {kind} {name}, "
                        f"the log has {recorded.kind} {recorded.name}; the run is parked",
                        run_id=runner.run_id, step=step,
                    )
                    await runner.park(mismatch)
                    raise mismatch
                ok, value = runner.answer(recorded)
                if isinstance(item, LocalStep):
                    value = await item.settle(value)
                if ok:
                    reply = value
                else:
                    error = value
                continue
            runner.check_held()
            if isinstance(item, LocalStep):  # recorded first: a sleep resumes with its end
                value = item.value()
                await runner.record(StepRecord(runner.run_id, step, kind, name, True, dumps_text(value)))
                reply = await item.settle(value)
                continue
            _assign_ids(item, runner.run_id, step)
            claim = runner.claim(step, kind, name, item)
            token = current_claim.set(claim)
            try:
                outcome = yield item
            except RunLeaseLostError:  # another process runs it now: nothing more to do here
                current_claim.reset(token)
                raise
            except Exception as exc:  # the step failed: recorded, then thrown into the handler
                current_claim.reset(token)
                await runner.record(StepRecord(runner.run_id, step, kind, name, False,
                                               json.dumps(wire.encode_error(exc))))
                error = exc
                continue
            except BaseException as exc:  # cancelled: not a step outcome; the run resumes later
                current_claim.reset(token)
                error = exc
                continue
            current_claim.reset(token)
            reply = runner.result(kind, outcome)
            if claim is None or not claim.recorded:
                await runner.record(StepRecord(runner.run_id, step, kind, name, True, runner.encode(kind, outcome)))
    finally:
        await inner.aclose()


def _kind(item: Any) -> str | None:
    if isinstance(item, LocalStep):
        return item.kind
    if isinstance(item, Event):
        return "event"
    if isinstance(item, BaseMessage):
        return "command"
    if isinstance(item, WaitFor):
        return "wait"
    if isinstance(item, (list, tuple)) and item and all(isinstance(m, BaseMessage) for m in item):
        return "batch"
    return None


def _child_id(run_id: str, step: int, position: int = 0) -> str:
    """The message id of a run's child: the same on every replay of the run."""
    return hashlib.sha256(f"{run_id}:{step}:{position}".encode()).hexdigest()[:32]


def _assign_ids(item: Any, run_id: str, step: int) -> None:
    if isinstance(item, BaseMessage):
        item.iid = _child_id(run_id, step)
    elif isinstance(item, (list, tuple)):
        for position, message in enumerate(item):
            if isinstance(message, BaseMessage):
                message.iid = _child_id(run_id, step, position)


def run_store_of(unit_of_work: Any) -> RunStore | None:
    """The run store of a unit of work (``durable: true``), or None."""
    store = getattr(unit_of_work, "runs", None)
    return store if store is not None else None


class _Run:
    """One run of a durable handler, as the wrapper drives it."""

    def __init__(self, message: BaseMessage, version: str, replays: frozenset[str] = frozenset()) -> None:
        hub = get_hub()
        app = get_app()
        if hub is None or app is None or app.protocol is None:
            raise ConfigError(f"durable handler of {message.name} runs outside an app with a unit of work")
        if isinstance(message, Event):
            raise ConfigError(
                f"{message.name} is an Event: @durable applies to Command handlers (a run is one per "
                "message id, and an Event has many handlers); let an Event handler send a Command"
            )
        unit_of_work = app.protocol.unit_of_work
        store = run_store_of(unit_of_work)
        if store is None:
            raise ConfigError(
                f"{app.domain}: a durable handler needs its app's unit_of_work to keep runs: use "
                "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork with 'durable: true'"
            )
        self.hub: "HubT" = hub
        self.unit_of_work = unit_of_work
        self.store = store
        self.keeper: Keeper = keeper_of(hub, store)
        #: Set by the keeper when this process no longer holds the run: it stops at its next step.
        self.lost = False
        self.message = message
        self.version = version
        self.replays = replays
        self.run_id = message.iid
        self.name = hub.registry.name_of(type(message))
        self.steps: dict[int, StepRecord] = {}
        self.last: Any = None
        self.completed: Any = _NOT_DONE
        #: ``(True, result)``, ``(False, error)``, or ``(None, None)`` while it has none.
        self.outcome: tuple[bool | None, Any] = (None, None)

    async def open(self) -> None:
        session = get_session()
        now = time.time()
        keeper = self.keeper
        record = RunRecord(
            self.run_id, self.name, self.version,
            json.dumps(wire.encode(self.message, self.name, session=session)), RUNNING, None, now, now,
            keeper.owner, keeper.until(),
        )
        stored, steps = await self.store.start(record)
        if stored.status == RUNNING and (stored.owner != keeper.owner or stored.lease_until < now):
            # Left by a process that died, or held by one that runs it still (this is a delivery
            # again): taken once its lease runs out, or answered as it ended there.
            found = await keeper.take(self.run_id)
            if found is None:
                raise RunMismatchError(f"run {self.run_id} of {self.name} was deleted", run_id=self.run_id)
            stored, steps = found
        if stored.status == DONE:
            self.completed = json.loads(stored.outcome or "null")
            return
        if stored.status == FAILED and stored.outcome:  # delivered again (a retry): the same error
            error = wire.decode_error(json.loads(stored.outcome))
            error.__notes__ = [f"recorded by durable run {self.run_id}, which failed"]
            raise error
        if stored.status != RUNNING:
            raise RunMismatchError(
                f"run {self.run_id} of {self.name} is {stored.status}; only a running run is resumed",
                run_id=self.run_id, step=None,
            )
        if stored.version != self.version and stored.version not in self.replays:
            mismatch = RunMismatchError(
                f"run {self.run_id} of {self.name} was recorded by version {stored.version!r} of its "
                f"handler, this is {self.version!r} (replays={tuple(sorted(self.replays))!r}); the run is parked",
                run_id=self.run_id, step=None,
            )
            await self.park(mismatch)
            raise mismatch
        keeper.hold(self.run_id, self)
        self.steps = {s.step: s for s in steps}
        if steps:
            log.info("resuming run %s of %s at step %d", self.run_id, self.name, len(steps))

    def name_of(self, kind: str, item: Any) -> str:
        if isinstance(item, LocalStep):
            return kind
        registry = self.hub.registry
        if kind == "wait":
            return registry.name_of(item.event_type)
        if kind == "batch":
            return ",".join(registry.name_of(type(m)) for m in item)
        return registry.name_of(type(item))

    def claim(self, step: int, kind: str, name: str, item: Any) -> Claim | None:
        """A Command of this unit of work records its step in its own transaction."""
        if kind != "command":
            return None
        handler = self.hub.registry.command_handler(type(item))
        app = handler.app if handler is not None else None
        if app is None or app.protocol is None or app.protocol.unit_of_work is not self.unit_of_work:
            return None
        return Claim(self.unit_of_work, self.store, self.keeper.owner, self.run_id, step, kind, name)

    def encode(self, kind: str, outcome: Any) -> str:
        if kind == "wait":
            events = outcome if isinstance(outcome, list) else [outcome]
            encoded = [wire.encode(e, self.hub.registry.name_of(type(e))) for e in events]
            return json.dumps({"single": not isinstance(outcome, list), "events": encoded})
        return dumps_text(jsonable(outcome))

    def result(self, kind: str, outcome: Any) -> Any:
        """What the handler gets back live: what a replay will give it."""
        if kind == "wait":
            return outcome
        return json.loads(dumps_text(jsonable(outcome)))

    def answer(self, step: StepRecord) -> tuple[bool, Any]:
        """A recorded step's outcome: ``(True, result)`` or ``(False, the error to throw in)``."""
        if not step.ok:
            error = wire.decode_error(json.loads(step.value))
            error.__notes__ = [f"replayed from step {step.step} of durable run {self.run_id}"]
            return False, error
        value = json.loads(step.value)
        if step.kind != "wait":
            return True, value
        events = []
        for fields in value["events"]:
            envelope = wire.decode(fields)
            events.append(wire.build(wire.resolve(self.hub.registry, envelope.name), envelope))
        return True, events[0] if value["single"] else events

    def check_held(self) -> None:
        """Before a step is dispatched: this process must still hold the run."""
        if self.lost:
            raise RunLeaseLostError(
                f"durable run {self.run_id} of {self.name} is no longer held by this process: another "
                "process took it over (its lease ran out here), or it was cancelled (bollydog sagas cancel) "
                "or parked; it stops here",
                run_id=self.run_id,
            )

    async def record(self, step: StepRecord) -> None:
        await self.store.record(step, owner=self.keeper.owner)
        self.steps[step.step] = step

    async def end(self, status: Status, outcome: str) -> None:
        # No longer renewed from here on: its end clears the owner, which a renewal running
        # meanwhile must not take for a lost lease.
        self.keeper.drop(self.run_id, self)
        await self.store.finish(self.run_id, status, outcome, self.keeper.owner)

    async def finish(self) -> None:
        await self.end(DONE, dumps_text(jsonable(self.last)))

    async def failed(self, error: BaseException) -> None:
        if isinstance(error, (RunMismatchError, RunLeaseLostError)):
            return  # parked already, or not this process's to end
        await self.end(FAILED, json.dumps(wire.encode_error(error)))

    async def park(self, error: RunMismatchError) -> None:
        await self.end(PARKED, json.dumps(wire.encode_error(error)))


def run_stores(hub: "HubT") -> list[RunStore]:
    """The run stores of the hub's apps, each once."""
    stores: dict[int, RunStore] = {}
    for app in hub.apps.values():
        store = run_store_of(getattr(app.protocol, "unit_of_work", None))
        if store is not None:
            stores.setdefault(id(store), store)
    return list(stores.values())


def durable_keepers(hub: "HubT") -> Keepers:
    """The lease keepers of ``hub``'s run stores: ``start()`` once the hub runs resumes the runs
    nobody holds, ``stop()`` after it drained lets go of the rest."""
    return Keepers(hub, message_of)


def message_of(hub: "HubT", run: RunRecord) -> BaseMessage:
    """The message that started ``run``, rebuilt with its id and trace."""
    envelope = wire.decode(json.loads(run.input))
    token = current_session.set(envelope.session)
    try:
        return wire.build(wire.resolve(hub.registry, envelope.name), envelope)
    finally:
        current_session.reset(token)



_NOT_DONE = object()

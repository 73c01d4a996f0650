"""HubService: dispatches every Command and Event, in this process or through a transport.

``await hub.execute(msg)`` runs the message now, in the caller's task, and returns its result.
``await hub.put_message(msg)`` queues it and returns at once; ``await msg.state`` gives the
result. The queue is bounded (:class:`~bollydog.errors.QueueFullError` when full) and is drained
by up to ``concurrency`` concurrent tasks. Messages queued from inside a handler are part of
their parent's work: they start at once, outside the queue and its limit, so nested dispatch
cannot deadlock however busy the hub is.

Lifecycle (``mode``): ``async with hub`` starts the apps (and their protocols) and the
transport; stopping refuses new messages and stops the entrypoints' intake, lets queued and
in-flight work (top-level :meth:`HubService.execute` calls included) finish within
``shutdown_grace`` seconds, then cuts what is left: generator handlers get the cancellation at
their ``yield`` and ``compensation_grace`` seconds to compensate, and the messages and callers
get :class:`~bollydog.errors.HubNotRunningError`. Then the entrypoints close, the transport
stops, and the apps stop.
:meth:`HubService.force_stop` skips the waiting and the compensation.

Routing and the handler execution path live in :mod:`bollydog.hub.dispatch`. Composition,
lifecycle and scheduling stay together here (~500 lines): the shutdown sequence reads and cuts
the queue, the in-flight tasks and the top-level callers at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Sequence
from contextvars import Context, copy_context
from typing import Any

from bollydog.context import current_hub, handler_frame
from bollydog.errors import (
    ConfigError,
    EventHandlersError,
    HandlerRegistrationError,
    HubNotRunningError,
    QueueFullError,
    describe,
    log_failure,
)
from bollydog.handlers import Handler, HandlerRegistry, discover, handler_of, messages_in
from bollydog.hub.middleware import (
    Middleware,
    RetryMiddleware,
    TransactionMiddleware,
    TimeoutMiddleware,
)
from bollydog.hub.dispatch import Dispatcher
from bollydog.hub.hooks import Hooks
from bollydog.hub.transport import InProcessTransport, Transport
from bollydog.hub.waiting import Waiting
from bollydog.models.base import BaseMessage
from bollydog.models.service import AppService
from bollydog.durable.runner import durable_keepers, run_stores
from bollydog.outbox.relay import recover_outboxes
from bollydog.service.builtins import BollydogService
from bollydog.settings import get_settings
from bollydog.types import Entrypoint, HubT

log = logging.getLogger("bollydog.hub")

#: An entry of the hub queue: ``(-priority, arrival, message, the sender's context)``; the
#: arrival number keeps equal priorities in order and the comparison off the message.
_Queued = tuple[int, int, BaseMessage, Context]


class HubService(HubT):
    """The message hub. See the module documentation for the dispatch rules."""

    mundane_level = "debug"

    def __init__(
        self,
        apps: Iterable[AppService] = (),
        *,
        transport: Transport | None = None,
        queue_max_size: int | None = None,
        concurrency: int | None = None,
        shutdown_grace: float | None = None,
        compensation_grace: float | None = None,
        middlewares: Sequence[Middleware] = (),
        builtins: bool = True,
    ) -> None:
        super().__init__()
        settings = get_settings()
        self.queue_max_size = queue_max_size or settings.queue_max_size
        self.concurrency = concurrency or settings.hub_concurrency
        self.shutdown_grace = settings.shutdown_grace if shutdown_grace is None else shutdown_grace
        self.compensation_grace = (
            settings.compensation_grace if compensation_grace is None else compensation_grace
        )
        self.transport = transport if transport is not None else InProcessTransport()
        self.registry = HandlerRegistry()
        self.apps: dict[str, AppService] = {}
        self.entrypoints: list[Entrypoint] = []
        #: What the hub reports outward: completions, retries, dead letters (see hub/hooks.py).
        self.hooks = Hooks()
        self.waiting = Waiting(settings.wait_retention, settings.wait_buffer)  # WaitFor (hub/waiting.py)
        self._durable = durable_keepers(self)  # leases of durable runs (durable/lease.py)
        # Outermost first: user layers (e.g. telemetry) see retries; each retry gets its own
        # transaction; the deadline bounds the handler inside it, so an expired handler rolls
        # back while a commit is never cut short.
        self.middlewares: list[Middleware] = [
            *middlewares,
            RetryMiddleware(settings.retry_backoff, settings.retry_backoff_max, self.hooks.retrying),
            TransactionMiddleware(self.publish_nowait),
            TimeoutMiddleware(),
        ]
        self.dispatcher = Dispatcher(self, self.registry, self.middlewares, self._compensation)
        #: The version of the handler code: 1 at start, bumped by each hot-reload swap (handler
        #: spans carry it as ``bollydog.code_version``).
        self.code_version = 1
        #: What the last hot reload did (``GET /_bollydog/reload``); None without ``--reload``.
        self.reload_report: dict[str, Any] | None = None
        self._routes = self.dispatcher.routes  # the execute fast path: one dict lookup
        if builtins:
            self.add_app(BollydogService())
        for app in apps:
            self.add_app(app)
        # Empty until start; each start makes a new one, bound to the loop it runs in.
        self._queue: asyncio.PriorityQueue[_Queued] = asyncio.PriorityQueue(self.queue_max_size)
        self._active = 0  # top-level messages running (nested ones are not counted)
        self._capacity: asyncio.Future[None] | None = None  # the intake waits here when at the limit
        self._held: BaseMessage | None = None  # taken by the intake, waiting for capacity
        #: Set by the intake when it starts a queued message: what a drain with nothing running
        #: (yet) but something queued waits for, instead of polling.
        self._picked_up: asyncio.Future[None] | None = None
        self._sequence = itertools.count()
        self._inflight: dict[asyncio.Task[None], BaseMessage] = {}
        # Tasks inside a top-level execute() (HTTP requests, transports, scripts): in-flight
        # work too, which stopping waits for and, past the grace period, cuts.
        self._callers: dict[asyncio.Task[Any], BaseMessage] = {}
        self._cut: dict[asyncio.Task[Any], int] = {}  # task -> cancellations the shutdown sent it
        self._accepting = False
        self._forced = asyncio.Event()
        self._intake_task: asyncio.Task[None] | None = None

    # -- composition ---------------------------------------------------------------------------

    def add_app(self, app: AppService) -> AppService:
        """Register ``app`` and the handlers of its modules; it starts and stops with the hub."""
        if app.domain in self.apps and self.apps[app.domain] is not app:
            raise ConfigError(f"two apps for domain '{app.domain}'; a domain has one AppService")
        self.registry.declare_domain(app.domain, app.handlers)
        for module in app.handlers:
            self.registry.register_all(discover(module), app)
            for message_type in messages_in(module):
                self.registry.add_message(message_type)
        self.dispatcher.invalidate()
        self.apps[app.domain] = app
        app.hub = self
        self.add_dependency(app)
        return app

    def add_middleware(self, layer: Middleware, *, outermost: bool = True) -> None:
        """Add a dispatch layer (telemetry, auditing, ...); outermost by default."""
        if outermost:
            self.middlewares.insert(0, layer)
        else:
            builtin = next(i for i, m in enumerate(self.middlewares) if isinstance(m, RetryMiddleware))
            self.middlewares.insert(builtin, layer)  # just outside the built-in layers
        self.dispatcher.invalidate()

    def register(self, *handlers: Any, app: AppService | None = None) -> None:
        """Register handler functions or self-handling message classes directly."""
        for obj in handlers:
            handler = obj if isinstance(obj, Handler) else handler_of(obj, strict=True)
            if handler is None:
                raise HandlerRegistrationError(
                    f"{obj!r} is not a handler: annotate its first parameter with a message class"
                )
            self.registry.register(handler, app)
        self.dispatcher.invalidate()

    # -- lifecycle -----------------------------------------------------------------------------

    def add_entrypoint(self, entrypoint: Entrypoint) -> Entrypoint:
        """Start ``entrypoint`` after the apps; on stop, stop it before draining the hub."""
        entrypoint.hub = self
        self.entrypoints.append(entrypoint)
        self.add_dependency(entrypoint)
        return entrypoint

    async def on_start(self) -> None:
        # mode starts dependencies after on_start, in order: apps (and their protocols) first,
        # then the transport, then entrypoints, which may send messages as soon as they are up.
        current_hub.set(self)
        self.registry.bind_domains()
        self._queue = asyncio.PriorityQueue(self.queue_max_size)
        self._accepting = True
        self._intake_task = asyncio.create_task(self._intake(), name="bollydog-hub-intake")
        self._adopt_transport()

    async def on_started(self) -> None:
        # The transport runs now: the leases of durable runs held here are renewed from now on,
        # and the runs nobody holds resume here; outboxes publish what a crash left.
        await self._durable.start(run_stores(self))
        await recover_outboxes(self)

    def _adopt_transport(self) -> None:
        """Make the transport a dependency between the apps and the entrypoints.

        mode starts dependencies in order and stops them in reverse, after :meth:`on_stop`:
        the transport's consumers deliver to started apps only, entrypoints send through a
        started transport, and it stops once the hub drained (replies to in-flight handlers'
        remote requests keep coming meanwhile), before the apps.
        """
        transport = self.transport
        transport.bind(self)
        others = [c for c in self._children if c is not transport and c not in self.entrypoints]
        if transport not in self._children:
            self.add_dependency(transport)
        self._children[:] = [*others, transport, *self.entrypoints]

    async def on_stop(self) -> None:
        try:
            await self._wind_down()
        finally:
            await self._durable.stop()  # what was cut is released: another process takes it over
        # mode stops the transport next (a dependency, see _adopt_transport), then the apps.

    async def _wind_down(self) -> None:
        # One deadline for everything: entrypoints stop taking requests at once and return when
        # the ones in flight have answered, while the hub drains; past the grace period the
        # hub cuts its work (callers get HubNotRunningError: a 503, an error frame), then tells
        # the entrypoints to answer whatever is still open. mode stops the apps afterwards.
        # Connections first: entrypoints that can take no new connection stop now, and the
        # requests their servers already read are admitted as in-flight work, not refused.
        # Two loop turns: a read callback queued behind this one still delivers a request (its
        # task starts a turn later).
        for entrypoint in self.entrypoints:
            entrypoint.stop_accepting()
        if self.entrypoints:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            # Connections opened just before the stop may have their first request on its way:
            # admitted while their server still reads them (kit/guard.py FRESH_GRACE).
            while any(entrypoint.settling() for entrypoint in self.entrypoints):
                await asyncio.sleep(_SETTLE_POLL)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        self._accepting = False
        closing: dict[asyncio.Future[Any], Entrypoint] = {
            asyncio.ensure_future(e.stop()): e for e in reversed(self.entrypoints)
        }
        if not await self.drain(self.shutdown_grace, also=closing):
            await self.cancel_inflight()
            if closing:
                # Requests waiting on the hub are answering now; a moment later, entrypoints
                # are told to answer whatever else is still open.
                _, pending = await asyncio.wait(closing, timeout=_UNWIND_TIME)
                if pending:
                    self._abort_entrypoints()
        if closing:
            await self._closed(closing)
        await self._stop_intake()

    async def _stop_intake(self) -> None:
        if self._intake_task is not None:
            self._intake_task.cancel()
            await asyncio.gather(self._intake_task, return_exceptions=True)
            self._intake_task = None

    async def _closed(self, closing: dict[asyncio.Future[Any], Entrypoint]) -> None:
        """Wait for the entrypoints to stop; once forced, only briefly."""
        forced = asyncio.ensure_future(self._forced.wait())
        pending = set(closing)
        try:
            while pending and not self._forced.is_set():
                _, pending = await asyncio.wait([*pending, forced], return_when=asyncio.FIRST_COMPLETED)
                pending.discard(forced)
        finally:
            forced.cancel()
        if pending:  # forced: they are told not to wait for their clients any more
            self._abort_entrypoints()
            _, pending = await asyncio.wait(pending, timeout=_UNWIND_TIME)
        for future, entrypoint in closing.items():
            if future.done() and not future.cancelled() and future.exception() is not None:
                log.error("stopping %s failed: %s", entrypoint.label, future.exception())
        if pending:
            log.warning("%s did not stop in time; abandoned", ", ".join(closing[f].label for f in pending))

    @property
    def accepting(self) -> bool:
        return self._accepting

    def _running(self) -> set[asyncio.Task[Any]]:
        """Tasks of in-flight work (queued messages not included), the current one excepted: a
        handler that stops the hub does not wait for itself."""
        running = {task for task in self._inflight if not task.done()}
        running.update(self._callers)
        running.discard(asyncio.current_task())
        return running

    def _message_of(self, task: asyncio.Task[Any]) -> BaseMessage:
        message = self._inflight.get(task)
        return message if message is not None else self._callers[task]

    async def _wait(self, also: set[asyncio.Future[Any]], timeout: float | None, *, forceable: bool = True) -> bool:
        """Wait until queued and in-flight work and ``also`` are done; False when ``timeout``
        passed first, or (``forceable``) :meth:`force_stop` was called."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        forced = asyncio.ensure_future(self._forced.wait()) if forceable else None
        try:
            while True:
                pending: set[asyncio.Future[Any]] = {*self._running(), *(f for f in also if not f.done())}
                queued = self._held is not None or not self._queue.empty()
                if not pending and not queued:
                    return True
                remaining = None if deadline is None else deadline - loop.time()
                if (remaining is not None and remaining <= 0) or (forceable and self._forced.is_set()):
                    return False
                if not pending:  # queued work the intake is about to start
                    picked_up = self._picked_up = loop.create_future()
                    pending.add(picked_up)
                if forced is not None:
                    pending.add(forced)
                await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if forced is not None:
                forced.cancel()

    async def drain(self, grace: float, *, also: Iterable[asyncio.Future[Any]] = ()) -> bool:
        """Wait up to ``grace`` seconds for queued and in-flight messages, top-level
        :meth:`execute` calls included (and for the futures in ``also``); True if all finished.
        :meth:`force_stop` cuts the wait short."""
        return await self._wait(set(also), grace)

    def force_stop(self) -> None:
        """Stop waiting: a stop in progress (or the next one) cancels in-flight work at once,
        without compensation, and no longer waits for the entrypoints' clients."""
        self._forced.set()

    async def cancel_inflight(self) -> None:
        """Fail queued messages and cancel running ones: used when the grace period ran out.

        A cancelled generator handler gets ``compensation_grace`` seconds (none once forced) to
        compensate, and what it dispatches meanwhile runs; whatever still runs then is
        cancelled once more. Every message cut gets :class:`HubNotRunningError`, and so do the
        callers of :meth:`execute` that were waiting for one.
        """
        self._accepting = False
        await self._stop_intake()  # or it would start the message it holds, failed below
        error = HubNotRunningError("the hub stopped before this message completed")
        if self._held is not None:
            self._held.set_exception(error)
            self._held = None
        while not self._queue.empty():
            _, _, message, _ = self._queue.get_nowait()
            message.set_exception(error)
        running = self._running()
        forced = self._forced.is_set()
        when = "the stop was forced" if forced else f"the shutdown grace ({self.shutdown_grace}s) ran out"
        for task in running:  # one line per message cut, no traceback: this is no failure of its own
            message = self._message_of(task)
            log.warning(
                "%s (%s) cut: still running when %s trace_id=%s",
                message.name, message.iid, when, message.trace_id,
            )
        cut: dict[asyncio.Task[Any], BaseMessage] = {}
        # First round: compensation time (generators bound their own; the margin lets them end
        # on their own), cut short by force_stop. Second round: whatever still runs (stuck, or
        # dispatched by a compensation) is cancelled again and given a moment to unwind.
        budget = _UNWIND_TIME if forced else self.compensation_grace + _UNWIND_TIME
        for forceable in (not forced, False):
            for task in running:
                cut.setdefault(task, self._message_of(task))
                self._cut[task] = self._cut.get(task, 0) + 1
                task.cancel()
            if await self._wait(set(), budget, forceable=forceable) or forced:
                break
            running, budget = self._running(), _UNWIND_TIME
        stuck = self._running()
        if stuck:
            log.warning("%d task(s) still running after being cancelled at shutdown; abandoned", len(stuck))
        for task, message in cut.items():
            if task.done():
                self._cut.pop(task, None)
                self._inflight.pop(task, None)  # cancelled before its first step: never forgot itself
            message.set_exception(error)

    def _compensation(self) -> float:
        """Seconds a cancelled generator handler gets to compensate: none once forced."""
        return 0.0 if self._forced.is_set() else self.compensation_grace

    def _abort_entrypoints(self) -> None:
        for entrypoint in self.entrypoints:
            entrypoint.abort_inflight(forced=self._forced.is_set())

    # -- public dispatch -----------------------------------------------------------------------

    async def execute(self, message: BaseMessage) -> Any:
        """Run ``message`` now and return its result; its handler's exception propagates.

        Refused (:class:`HubNotRunningError`) before start and while stopping, except for
        messages sent by handlers still running: their work is part of what drains. A call
        still running when the shutdown grace ran out raises :class:`HubNotRunningError`.
        """
        caller = None
        if handler_frame.get() is None:
            if not self._accepting:
                raise HubNotRunningError("the hub is not running (not started, or stopping)")
            caller = asyncio.current_task()
            if caller is not None:
                self._callers[caller] = message
        try:
            # The common case, a Command with a local handler, skips one coroutine frame.
            handler, pipeline = self._routes.get(type(message)) or self.dispatcher.route(type(message))
            if pipeline is not None:
                # A route has a chain only together with its handler (see Dispatcher.route).
                result = await pipeline(message, handler)  # type: ignore[arg-type]
            else:
                result = await self.dispatch(message)
        except asyncio.CancelledError as exc:
            error = self._cut_error(caller)
            if error is None:
                message.set_exception(exc)
                raise
            message.set_exception(error)
            raise error from None
        except BaseException as exc:
            message.set_exception(exc)
            if self.hooks.completed and isinstance(exc, Exception):
                self.hooks.completed(message, None, exc)
            raise
        finally:
            if caller is not None:
                self._callers.pop(caller, None)
        message.set_result(result)
        if self.hooks.completed:
            self.hooks.completed(message, result, None)
        return result

    def _cut_error(self, caller: asyncio.Task[Any] | None) -> HubNotRunningError | None:
        """For a top-level call cancelled by the shutdown cut, and by nothing else: the error
        its caller gets instead of the cancellation."""
        if caller is None:
            return None
        sent = self._cut.pop(caller, 0)
        if not sent:
            return None
        remaining = 0
        for _ in range(sent):
            remaining = caller.uncancel()
        if remaining:
            return None  # cancelled by someone else too: let the cancellation through
        return HubNotRunningError("the hub stopped before this message completed")

    async def put_message(self, message: BaseMessage) -> BaseMessage:
        """Queue ``message`` and return it; ``await message.state`` gives the outcome.

        Refused (:class:`HubNotRunningError`) before start and while stopping, except for
        messages sent by handlers still running: their work is part of what drains.
        """
        if handler_frame.get() is not None:
            self._spawn(message)
            return message
        if not self._accepting:
            raise HubNotRunningError("the hub is not running (not started, or stopping)")
        if self._has_room():
            # Capacity is free and nobody waits before us: start now, skipping a loop turn.
            self._start(message, None)
            return message
        try:
            self._queue.put_nowait((-message.priority, next(self._sequence), message, copy_context()))
        except asyncio.QueueFull:
            raise QueueFullError(
                f"the hub queue is full ({self.queue_max_size} messages, BOLLYDOG_QUEUE_MAX_SIZE); "
                "retry later"
            ) from None
        return message

    async def submit(self, message: BaseMessage) -> Any:
        """Run ``message`` through the admission of :meth:`put_message` (queue bound,
        concurrency limit, shutdown) and return its result: what an entrypoint calls for a
        request. A failure is logged, as for a queued message, and raised.

        With capacity free and nobody queued it runs at once in the caller's task (as
        :meth:`execute`, whose cancellation rules apply); otherwise it is queued
        (:class:`QueueFullError` when full) and awaited. From inside a handler it is
        :meth:`execute`: nested work is never bounded.
        """
        if handler_frame.get() is not None:
            return await self.execute(message)
        if not (self._accepting and self._has_room()):
            await self.put_message(message)  # refused, or queued behind others
            state = message.state
            try:
                return await asyncio.shield(state)  # the caller leaving does not cancel it
            except asyncio.CancelledError:
                state.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
                raise
        self._active += 1
        try:
            return await self.execute(message)
        except HubNotRunningError:
            raise  # cut by the shutdown, which logged it
        except Exception as exc:
            self._log_failure(message, exc)
            raise
        finally:
            self._release()

    def _has_room(self) -> bool:
        """Capacity is free and nobody waits before us: a new message may start now."""
        return self._active < self.concurrency and self._held is None and self._queue.empty()

    def publish_nowait(self, event: BaseMessage) -> None:
        """Start ``event``'s handlers in the background; failures are logged, never lost."""
        self._spawn(event)

    async def dispatch(self, message: BaseMessage) -> Any:
        """Route ``message`` to its local handler(s) or to the transport and return the result."""
        return await self.dispatcher.dispatch(message)

    async def run_event_handlers(self, event: BaseMessage, handlers: tuple[Handler, ...]) -> list[Any]:
        """Run ``handlers`` of ``event`` concurrently; raise :class:`EventHandlersError` (after
        all ran) when some failed. Transports use it to run one domain's handlers."""
        return await self.dispatcher.run_event_handlers(event, handlers)

    # -- scheduling ----------------------------------------------------------------------------

    async def _intake(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            _, _, message, context = await queue.get()
            self._held = message
            while self._active >= self.concurrency:
                self._capacity = loop.create_future()
                await self._capacity
            self._held = None
            self._start(message, context)
            picked_up = self._picked_up
            if picked_up is not None and not picked_up.done():
                picked_up.set_result(None)

    def _start(self, message: BaseMessage, context: Context | None) -> None:
        self._active += 1
        task = asyncio.create_task(self._run_queued(message, True), context=context)
        self._inflight[task] = message

    def _spawn(self, message: BaseMessage) -> None:
        task = asyncio.create_task(self._run_queued(message, False))
        self._inflight[task] = message

    async def _run_queued(self, message: BaseMessage, counted: bool) -> None:
        try:
            result = await self.dispatcher.dispatch(message)
        except asyncio.CancelledError:
            if asyncio.current_task() in self._cut:  # tell its waiters now, not after the cut
                message.set_exception(HubNotRunningError("the hub stopped before this message completed"))
            raise
        except Exception as exc:
            message.set_exception(exc)
            if self.hooks.completed:
                self.hooks.completed(message, None, exc)
            self._log_failure(message, exc)
        else:
            message.set_result(result)
            if self.hooks.completed:
                self.hooks.completed(message, result, None)
        finally:
            # Here rather than in a done callback: one loop callback less per message. (A task
            # cancelled before its first step never runs this: see _running.)
            self._inflight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            if counted:
                self._release()

    def _release(self) -> None:
        """A counted message is done: its capacity goes to the intake, if it waits."""
        self._active -= 1
        capacity = self._capacity
        if capacity is not None and not capacity.done():
            capacity.set_result(None)

    def _log_failure(self, message: BaseMessage, exc: Exception) -> None:
        if not isinstance(exc, EventHandlersError):  # already logged handler by handler
            log_failure(
                log, exc, describe(exc), "%s (%s) failed trace_id=%s",
                self.registry.name_of(type(message)), message.iid, message.trace_id,
            )

    # -- introspection -------------------------------------------------------------------------

    @property
    def task_count(self) -> int:
        """Messages being handled now (queued ones excluded)."""
        return len(self._inflight)

    @property
    def queue_size(self) -> int:
        return self._queue.qsize()

    def inflight_messages(self) -> list[BaseMessage]:
        return list(self._inflight.values())


#: Seconds cancelled work gets to unwind when it has no compensation to run (a forced stop, or
#: a second cancellation), and forced entrypoints to close.
_UNWIND_TIME = 0.2
#: How often a stopping hub looks whether its entrypoints still read fresh connections.
_SETTLE_POLL = 0.005

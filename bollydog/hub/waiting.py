"""Waiting for Events other handlers produce: :class:`WaitFor` and the hub's :class:`Waiting`.

A handler waits for one Event, or collects several, correlated by context::

    payment = yield WaitFor(PaymentReceived, match={"order_id": command.order_id}, timeout=30)
    payment = await wait_for(PaymentReceived, match=lambda e: e.order_id == oid)   # a coroutine

What a wait sees: every Event of its class (exactly that class) dispatched in this process: published
here, or delivered by the transport from another process. The window opens when the
:class:`WaitFor` is created (it registers at once when a hub is current), and reaches back into
the hub's recent-events buffer: events seen up to ``retention`` seconds before
(``BOLLYDOG_WAIT_RETENTION``, 5 s; at most ``BOLLYDOG_WAIT_BUFFER`` per class, 256), but never
before the current handler's message was created. So an event that a command dispatched just
before the wait caused is not missed. A wait observes; it does not consume: every wait an event
matches gets it. Within one handler run, an event an earlier wait returned is not returned again
from the buffer.

The timeout runs from creation; when it passes, :class:`~bollydog.errors.WaitTimeoutError`
(504) is raised, its ``received`` holding what was collected so far.

The hub calls :meth:`Waiting.observe` once per event it dispatches (see
:meth:`~bollydog.hub.dispatch.Dispatcher.run_event_handlers`): a time read and a deque append
when nobody waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Mapping
from typing import Any, Generic, TypeVar

from bollydog.context import AnonymousSession, current_session, get_hub, get_message
from bollydog.errors import HubNotRunningError, WaitTimeoutError
from bollydog.models.base import RESERVED_FIELDS, BaseMessage, Event, Session

__all__ = ["WaitFor", "Waiting", "wait_for"]

E = TypeVar("E", bound=Event)

#: ``match=``: a predicate on the event, or field values the event must have.
Match = Callable[[Any], bool] | Mapping[str, Any] | None

#: Handler runs whose delivered events are remembered (so a later wait of the same run does not
#: get them again from the buffer); the oldest run is forgotten first.
_RUNS_REMEMBERED = 4096


class WaitFor(Generic[E]):
    """Wait for Events of ``event_type`` that match, for at most ``timeout`` seconds.

    Correlation, all of which must hold: ``match`` (a predicate, or a mapping of field values),
    ``trace=True`` (the event belongs to the current message's trace: produced, here or in
    another process, by what this handler dispatched), ``session=True`` (dispatched under the
    current session). ``count=n`` collects ``n`` events, ``until=pred`` collects until
    ``pred(events so far)`` is true; either returns the list. Without them the single event is
    returned.

    Yield it from a generator handler, or ``await`` it anywhere a hub is running.
    """

    __slots__ = (
        "event_type", "match", "trace_id", "session_uid", "count", "until", "timeout",
        "received", "_waiting", "_future", "_deadline", "_expiry", "_run", "_seen",
    )

    def __init__(
        self,
        event_type: type[E],
        *,
        match: Match = None,
        trace: bool = False,
        session: bool = False,
        count: int | None = None,
        until: Callable[[list[E]], bool] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"WaitFor waits for Events; got {event_type!r}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError(f"WaitFor count must be a positive integer, got {count!r}")
        if count is not None and until is not None:
            raise ValueError("WaitFor takes count= or until=, not both")
        if not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"WaitFor timeout must be a positive number of seconds, got {timeout!r}")
        if match is not None and not callable(match) and not isinstance(match, Mapping):
            raise TypeError(f"WaitFor match must be a callable or a mapping of field values, got {match!r}")
        if isinstance(match, Mapping):
            unknown = sorted(set(match) - set(event_type.model_fields))
            if unknown:
                own = [f for f in event_type.model_fields if f not in RESERVED_FIELDS]
                raise ValueError(
                    f"WaitFor match names no field of {event_type.__name__}: {', '.join(unknown)} "
                    f"(fields: {', '.join(own)}, and the reserved ones such as trace_id)"
                )
        self.event_type = event_type
        self.match = match
        self.count = count
        self.until = until
        self.timeout = float(timeout)
        message = get_message()
        self.trace_id: str | None = None
        if trace:
            if message is None:
                raise ValueError("WaitFor(trace=True) needs a current message: create it in a handler")
            self.trace_id = message.trace_id
        self.session_uid: str | None = None
        if session:
            current = current_session.get()
            if current is None:
                raise ValueError("WaitFor(session=True) needs a current session: create it in a handler")
            self.session_uid = current.uid
        #: The events collected so far.
        self.received: list[E] = []
        self._waiting: Waiting | None = None
        self._future: asyncio.Future[Any] | None = None
        self._deadline = 0.0
        self._expiry: asyncio.TimerHandle | None = None
        self._run = message.iid if message is not None else None
        self._seen: set[str] = set()
        hub = get_hub()
        if hub is not None and hub.accepting:
            hub.waiting.register(self)

    @property
    def single(self) -> bool:
        return self.count is None and self.until is None

    def accepts(self, event: BaseMessage, session_uid: str | None) -> bool:
        """Whether ``event`` (dispatched under the session ``session_uid``) is one to collect."""
        if event.iid in self._seen:
            return False
        if self.trace_id is not None and event.trace_id != self.trace_id:
            return False
        if self.session_uid is not None and session_uid != self.session_uid:
            return False
        match = self.match
        if match is None:
            return True
        if isinstance(match, Mapping):
            return all(getattr(event, name, _MISSING) == value for name, value in match.items())
        return bool(match(event))

    def _offer(self, event: BaseMessage, session_uid: str | None) -> None:
        future = self._future
        if future is None or future.done():
            return
        try:
            if not self.accepts(event, session_uid):
                return
            self._seen.add(event.iid)
            self.received.append(event)  # type: ignore[arg-type]  # accepts() checked the class
            done = (
                len(self.received) >= (self.count or 1) if self.until is None else bool(self.until(self.received))
            )
        except Exception as exc:  # a predicate that raises fails the wait, not the dispatch
            future.set_exception(exc)
            self._close()
            return
        if done:
            future.set_result(self.received[0] if self.single else list(self.received))
            self._close()

    def _close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._waiting is not None:
            self._waiting.unregister(self)

    def cancel(self) -> None:
        """Stop waiting (a wait created and never awaited leaves on its own at its timeout)."""
        self._close()

    async def wait(self) -> Any:
        """The event (or the list collected); :class:`WaitTimeoutError` when the time is up."""
        if self._waiting is None:
            hub = get_hub()
            if hub is None or not hub.accepting:
                raise HubNotRunningError("WaitFor needs a running hub: wait inside a handler or a started hub")
            hub.waiting.register(self)
        future = self._future
        assert future is not None  # set by register()
        try:
            async with asyncio.timeout_at(self._deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()  # it came in the same loop turn as the deadline
            raise WaitTimeoutError(
                f"waited {self.timeout:g}s for {self._describe()}; "
                f"got {len(self.received)} of {self.count or 1 if self.until is None else 'enough'}",
                waiting_for=self.event_type.__name__, timeout=self.timeout, got=len(self.received),
                received=list(self.received),
            ) from None
        finally:
            self._close()
            if self._run is not None and self.received:
                self._waiting_remember()

    def _waiting_remember(self) -> None:
        if self._waiting is not None and self._run is not None:
            self._waiting.taken(self._run).update(e.iid for e in self.received)

    def _describe(self) -> str:
        what = [self.event_type.__name__]
        if isinstance(self.match, Mapping):
            what.append(", ".join(f"{k}={v!r}" for k, v in self.match.items()))
        elif self.match is not None:
            what.append("a match")
        if self.trace_id is not None:
            what.append(f"trace {self.trace_id}")
        if self.session_uid is not None:
            what.append("this session")
        return " with ".join(what[:1] + [" and ".join(what[1:])]) if len(what) > 1 else what[0]

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"WaitFor({self._describe()}, timeout={self.timeout:g})"


async def wait_for(
    event_type: type[E],
    *,
    match: Match = None,
    trace: bool = False,
    session: bool = False,
    count: int | None = None,
    until: Callable[[list[E]], bool] | None = None,
    timeout: float = 30.0,
) -> Any:
    """``await WaitFor(...)``: the awaitable form, for coroutine handlers and scripts."""
    return await WaitFor(
        event_type, match=match, trace=trace, session=session, count=count, until=until, timeout=timeout
    )


class Waiting:
    """A hub's waits and its recent-events buffer (``hub.waiting``)."""

    __slots__ = ("retention", "buffer_size", "_recent", "_waiters", "_taken")

    def __init__(self, retention: float = 5.0, buffer_size: int = 256) -> None:
        #: Seconds an event stays in the buffer (0: no buffer, a wait sees only later events).
        self.retention = retention
        self.buffer_size = buffer_size
        # class -> (when seen, event, its session): the session's uid is read only if a wait asks.
        # The session as the context holds it (an anonymous one unresolved): only its uid is read.
        self._recent: dict[type, deque[tuple[float, BaseMessage, Session | AnonymousSession | None]]] = {}
        self._waiters: dict[type, list[WaitFor[Any]]] = {}
        self._taken: OrderedDict[str, set[str]] = OrderedDict()

    def observe(self, event: BaseMessage) -> None:
        """``event`` is being dispatched in this process: buffer it, hand it to the waits."""
        cls = type(event)
        waiters = self._waiters.get(cls)
        if self.retention <= 0 and not waiters:
            return
        session = current_session.get()
        if self.retention > 0:
            recent = self._recent.get(cls)
            if recent is None:
                recent = self._recent[cls] = deque(maxlen=self.buffer_size)
            recent.append((_monotonic(), event, session))
        if waiters:
            session_uid = session.uid if session is not None else None
            for waiter in tuple(waiters):  # a completed wait leaves the list meanwhile
                waiter._offer(event, session_uid)

    def register(self, waiter: WaitFor[Any]) -> None:
        """Start ``waiter``'s window: take what the buffer holds for it, then every new event."""
        if waiter._waiting is not None:
            return
        loop = asyncio.get_running_loop()
        waiter._waiting = self
        waiter._future = loop.create_future()
        waiter._deadline = loop.time() + waiter.timeout
        # A wait created and never awaited must not stay registered for ever.
        waiter._expiry = loop.call_at(waiter._deadline, waiter._close)
        self._waiters.setdefault(waiter.event_type, []).append(waiter)
        recent = self._recent.get(waiter.event_type)
        if recent:
            since = time.monotonic() - self.retention
            message = get_message()
            if message is not None and message.created_time:
                since = max(since, time.monotonic() - max(0.0, time.time() - message.created_time))
            taken = self._taken.get(waiter._run) if waiter._run is not None else None
            for seen, event, session in tuple(recent):
                if seen >= since and (taken is None or event.iid not in taken):
                    waiter._offer(event, session.uid if session is not None else None)

    def unregister(self, waiter: WaitFor[Any]) -> None:
        waiters = self._waiters.get(waiter.event_type)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[waiter.event_type]

    def taken(self, run: str) -> set[str]:
        """Events already returned to waits of handler run ``run`` (its message id)."""
        taken = self._taken.get(run)
        if taken is None:
            taken = self._taken[run] = set()
            if len(self._taken) > _RUNS_REMEMBERED:
                self._taken.popitem(last=False)
        else:
            self._taken.move_to_end(run)
        return taken

    @property
    def waiting(self) -> int:
        """Waits registered now."""
        return sum(len(w) for w in self._waiters.values())


_MISSING = object()
_monotonic = time.monotonic


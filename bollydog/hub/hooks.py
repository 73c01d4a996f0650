"""Hooks: how the hub (and its transport) tell outer layers what happened.

One mechanism for every report that goes outward: a message completed, here or in another
process of a split deployment (WebSocket subscriptions), a delivery is about to be retried (telemetry), a message went to a dead-letter
store (telemetry, a transport). Listeners are called synchronously, on the loop, in the order
they connected: keep them short (hand work to a queue). A listener that raises is logged and
otherwise ignored, so an observer can never break dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler
    from bollydog.models.base import BaseMessage

__all__ = ["Completion", "DeadLetter", "Hook", "Hooks"]

log = logging.getLogger("bollydog.hub")

P = ParamSpec("P")


class Hook(Generic[P]):
    """Listeners of one kind of report; calling the hook calls each of them."""

    __slots__ = ("name", "_listeners")

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: tuple[Callable[P, None], ...] = ()

    def connect(self, listener: Callable[P, None]) -> Callable[P, None]:
        """Call ``listener`` on every report from now on; returns it (usable as a decorator)."""
        if listener not in self._listeners:
            self._listeners = (*self._listeners, listener)
        return listener

    def disconnect(self, listener: Callable[P, None]) -> None:
        """Stop calling ``listener``; no error if it was not connected."""
        self._listeners = tuple(x for x in self._listeners if x != listener)

    def __bool__(self) -> bool:
        # Callers test the hook before building a report nobody would read (the hot path).
        return bool(self._listeners)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:  # a tuple: listeners may (dis)connect meanwhile
            try:
                listener(*args, **kwargs)
            except Exception:
                log.exception("%s listener %r failed", self.name, listener)


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message given up on and set aside: its canonical name (``"unknown"`` when an entry from
    outside names nothing registered), its domain, and why."""

    name: str
    domain: str
    reason: str
    message: "BaseMessage | None" = None


@dataclass(slots=True, frozen=True)
class Completion:
    """A message completed by another process of the deployment, as its transport reported it:
    its canonical name (``topic``), its id, the message and the result as JSON values, the error
    (``{"error": code, "message": ...}``) when it failed, and the reporting process's consumer name."""

    topic: str
    id: str
    message: Any
    result: Any
    error: dict[str, Any] | None
    origin: str


class Hooks:
    """The hub's reports.

    - ``completed(message, result, error)``: a message completed (``error`` None on success);
    - ``retrying(message, handler, attempt, error, delay)``: delivery ``attempt`` failed and is
      retried after ``delay`` seconds;
    - ``dead_lettered(dead_letter)``: a transport gave up on a message (:class:`DeadLetter`);
    - ``remote_completed(completion)``: another process completed a message (:class:`Completion`);
      a stream transport listens for those only while this hook has a listener
      (:mod:`bollydog.transport.notices`).
    """

    __slots__ = ("completed", "retrying", "dead_lettered", "remote_completed")

    def __init__(self) -> None:
        self.completed: Hook[["BaseMessage", Any, BaseException | None]] = Hook("completed")
        self.retrying: Hook[["BaseMessage", "Handler", int, BaseException, float]] = Hook("retrying")
        self.dead_lettered: Hook[[DeadLetter]] = Hook("dead_lettered")
        self.remote_completed: Hook[[Completion]] = Hook("remote_completed")

"""Per-message context, kept in :mod:`contextvars`.

The hub sets these while a handler runs; a message queued with ``put_message`` captures a copy of
the caller's context, so the session set by an entrypoint reaches every nested handler and two
concurrent handlers never see each other's message, app or protocol.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.base import BaseMessage, Session
    from bollydog.models.protocol import Protocol
    from bollydog.models.service import AppService
    from bollydog.types import HubT

#: ``(message, app, protocol, hub)`` of a running handler (app and protocol None for a handler
#: registered without an app; hub None only under ``bollydog.testing.handling``).
HandlerFrame = tuple["BaseMessage", "AppService | None", "Protocol | None", "HubT | None"]

# The handler being run, as one tuple: one context variable set per handler execution instead
# of four.
handler_frame: ContextVar[HandlerFrame | None] = ContextVar("bollydog.handler_frame", default=None)


class AnonymousSession:
    """The anonymous session of a top-level message no entrypoint gave one to, made on first
    use: most messages never read their session, and a :class:`Session` costs a microsecond.

    Shared through the context like a session (what the message dispatches shares it), so the
    one :class:`Session` it makes is every reader's. Read the session with :func:`get_session`.
    """

    __slots__ = ("uid", "_session")
    username: ClassVar[None] = None
    #: ``Session.anonymous``, set by :mod:`bollydog.models.base` (which imports this module).
    make: ClassVar[Callable[[str], "Session"]]

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self._session: Session | None = None

    def resolve(self) -> "Session":
        session = self._session
        if session is None:
            session = self._session = AnonymousSession.make(self.uid)
        return session


#: The session of the running code. Read it with :func:`get_session`, which resolves an
#: :class:`AnonymousSession`.
current_session: ContextVar["Session | AnonymousSession | None"] = ContextVar("bollydog.session", default=None)
# The hub outside handlers (a shell, a script): set when a hub starts.
current_hub: ContextVar["HubT | None"] = ContextVar("bollydog.hub", default=None)


def get_message() -> "BaseMessage | None":
    """The message whose handler is running, or None."""
    frame = handler_frame.get()
    return frame[0] if frame is not None else None


def get_app() -> "AppService | None":
    frame = handler_frame.get()
    return frame[1] if frame is not None else None


def get_protocol() -> "Protocol | None":
    frame = handler_frame.get()
    return frame[2] if frame is not None else None


def get_hub() -> "HubT | None":
    frame = handler_frame.get()
    return frame[3] if frame is not None else current_hub.get()


def get_session() -> "Session | None":
    """The session of the running code (every handler has one), or None outside handlers and
    entrypoints."""
    session = current_session.get()
    if type(session) is AnonymousSession:
        return session.resolve()
    return session  # type: ignore[return-value]


# Remote parent ``(trace_id, span_id)`` set by an entrypoint from an incoming ``traceparent``;
# messages created with no current message join that trace.
remote_parent: ContextVar[tuple[str, str] | None] = ContextVar("bollydog.remote_parent", default=None)

# Ids need uniqueness, not secrecy; random.getrandbits is what OpenTelemetry's SDK uses too.
_random_bits = random.getrandbits


def new_trace_id() -> str:
    """A W3C trace id: 32 lowercase hex digits, never all zero."""
    return (_random_bits(128) or 1).to_bytes(16).hex()


def new_span_id() -> str:
    """A W3C span id: 16 lowercase hex digits, never all zero."""
    return (_random_bits(64) or 1).to_bytes(8).hex()


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from a W3C ``traceparent`` header, or None if invalid."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[0] == "ff":
        return None
    trace_id, span_id = parts[1].lower(), parts[2].lower()
    try:
        int(parts[0], 16), int(parts[3], 16)
        if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
            return None
    except ValueError:
        return None
    return trace_id, span_id


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"

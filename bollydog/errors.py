"""The bollydog error tree.

Every error the framework raises derives from :class:`BollydogError`, so callers can catch the
framework's failures in one place while handler exceptions pass through unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BollydogError(Exception):
    """Base of every error raised by bollydog itself."""


# -- definition time ---------------------------------------------------------------------------


class ReservedFieldError(BollydogError, TypeError):
    """A message class declares a field whose name bollydog reserves."""


class HandlerRegistrationError(BollydogError):
    """A handler cannot be registered (bad signature, unknown injection, ...)."""


class DuplicateHandlerError(HandlerRegistrationError):
    """A Command got a second handler; a Command has exactly one."""


# -- configuration -----------------------------------------------------------------------------


class ConfigError(BollydogError):
    """The configuration file or environment is invalid. The message names the key."""


class MissingDependencyError(BollydogError, ImportError):
    """An optional feature is used but its extra is not installed."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{feature} needs the '{missing}' package, which is not installed; "
            f"install it with: pip install 'bollydog[{extra}]'"
        )
        self.feature, self.extra, self.missing = feature, extra, missing


# -- messages and dispatch ---------------------------------------------------------------------


class MessageError(BollydogError):
    """A message cannot be built or resolved."""


class UnknownMessageError(MessageError, LookupError):
    """No message class is known by that name or path."""


class InvalidMessageError(MessageError, ValueError):
    """The fields given for a message are invalid.

    ``errors`` holds one dict per problem: ``{"field": ..., "message": ..., "type": ...}``.
    """

    def __init__(self, message_name: str, errors: list[dict[str, Any]]) -> None:
        details = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"invalid {message_name}: {details}")
        self.message_name = message_name
        self.errors = errors


class NoHandlerError(BollydogError, LookupError):
    """A Command was dispatched but no handler, local or remote, serves it."""


class HubError(BollydogError):
    """The hub cannot accept or run a message right now."""


class HubNotRunningError(HubError):
    """The hub is not started, or is stopping: it accepts no new message."""


class QueueFullError(HubError):
    """The hub's queue is at ``BOLLYDOG_QUEUE_MAX_SIZE``; retry later."""


class HandlerTimeoutError(BollydogError, TimeoutError):
    """A handler did not finish within the message's ``expire_time``."""


class ConcurrentDispatchError(BollydogError, ExceptionGroup):
    """Some of the messages yielded together as a list failed.

    ``results`` holds, in yield order, each result or the exception that replaced it.
    """

    results: list[Any]

    def __new__(cls, message: str, exceptions: Any, results: list[Any] | None = None):
        self = super().__new__(cls, message, exceptions)
        self.results = list(results or [])
        return self

    def __init__(self, message: str, exceptions: Any, results: list[Any] | None = None) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Any) -> "ConcurrentDispatchError":
        return ConcurrentDispatchError(self.message, excs, self.results)


class EventHandlersError(BollydogError, ExceptionGroup):
    """One or more handlers of an Event failed; the others ran to completion."""

    def derive(self, excs: Any) -> "EventHandlersError":
        return EventHandlersError(self.message, excs)


class TransportError(BollydogError):
    """A message could not be sent to, or answered by, another process."""


class NoConsumerError(TransportError):
    """A Command's domain runs in other processes, but none of them is consuming right now.

    Raised at once instead of queueing the command for a worker that may never come; the command
    was not sent, so it never runs later. Retry once a worker of the domain is up, or let the
    command class wait for one (``wait_for_consumer = True``). Over HTTP: 503 with Retry-After.
    """

    status_code: ClassVar[int] = 503  # service unavailable: retry later
    code: ClassVar[str] = "no_consumer"
    exit_code: ClassVar[int] = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, retry later


class RemoteHandlerError(BollydogError):
    """A handler in another process failed; its error type and message are preserved."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type, self.remote_message = error_type, message

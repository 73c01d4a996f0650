"""The bollydog error tree, and how every error answers on every surface.

Every error the framework raises derives from :class:`BollydogError`, so callers can catch the
framework's failures in one place while handler exceptions pass through unchanged.

An exception says how it answers through :class:`ErrorMapping` class attributes: its HTTP
``status_code``, a machine ``code`` (the ``error`` of HTTP bodies and WebSocket frames) and the
CLI ``exit_code``. Users derive their domain errors from :class:`DomainError` (or put
:class:`ErrorMapping` on any exception class); the framework's own errors carry theirs the same
way. :func:`describe` is the one function that reads them: the HTTP and WebSocket entrypoints,
the CLI and the Redis reply encoding all answer from what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self


class ErrorMapping:
    """How an exception answers: HTTP status, machine code, CLI exit status, public fields.

    A mixin for any exception class (``class NotAvailable(LookupError, ErrorMapping)``);
    :class:`DomainError` and :class:`BollydogError` have it. Each attribute may be set on the
    class or, for one raise, on the instance (``self.status_code = 410``).
    """

    __slots__ = ()

    #: HTTP status of the response (400-599; anything else answers 500).
    status_code: int = 500
    #: Stable machine code: ``error`` in HTTP bodies and WebSocket/SSE error frames. None: the
    #: class name.
    code: str | None = None
    #: Exit status of ``bollydog execute`` when the message fails with this error.
    exit_code: int = 1
    #: Seconds after which a retry may succeed (HTTP ``Retry-After``). 0: temporary but for an
    #: unknown time (the entrypoint's own ``retry_after`` applies). None: not temporary.
    retry_after: float | None = None
    #: Instance attributes sent along (HTTP body keys, WebSocket frame keys). None: every public
    #: instance attribute.
    fields: tuple[str, ...] | None = None

    def http_headers(self) -> dict[str, str]:
        """Extra HTTP response headers (``WWW-Authenticate`` for an auth failure...)."""
        return {}


#: Attributes of :class:`ErrorMapping` itself: never sent as fields.
_MAPPING_ATTRIBUTES = frozenset({"status_code", "code", "exit_code", "retry_after", "fields"})
#: Keys of error bodies and frames that fields cannot take.
_RESERVED_BODY_KEYS = frozenset({"type", "id", "error", "message", "status", "traceback"})


class BollydogError(ErrorMapping, Exception):
    """Base of every error raised by bollydog itself: an unexpected server failure (HTTP 500,
    exit 1) unless a subclass says otherwise; no field is sent unless a subclass names it."""

    fields: tuple[str, ...] | None = ()


class DomainError(ErrorMapping, Exception):
    """Base of an application's own errors: a refusal the caller can act on, not a crash.

    Answers HTTP 400 with ``{"error": <code>, "message": str(error), <public attributes>}``,
    a WebSocket ``error`` frame with the same keys, and CLI exit status 1; set ``status_code``,
    ``code``, ``exit_code`` on a subclass to change that::

        class NotAvailable(DomainError):
            status_code = 409

        raise NotAvailable("dune is lent", title="dune")   # keyword arguments become fields

    Across processes (Redis transport) the caller raises the same class when it is imported
    there. A domain error is logged as one info line, without traceback: it is not a failure of
    the server. (Not a :class:`BollydogError`: bollydog never raises it.)
    """

    status_code = 400

    def __init__(self, *args: Any, **fields: Any) -> None:
        super().__init__(*args)
        for name, value in fields.items():
            setattr(self, name, value)

    if TYPE_CHECKING:
        # For the checker only: the keyword fields are attributes (``refused.title``).
        def __getattr__(self, name: str) -> Any: ...


# -- definition time ---------------------------------------------------------------------------


class ReservedFieldError(BollydogError, TypeError):
    """A message class declares a field whose name bollydog reserves."""


class HandlerRegistrationError(BollydogError):
    """A handler cannot be registered (bad signature, unknown injection, ...)."""

    exit_code = 2


class DuplicateHandlerError(HandlerRegistrationError):
    """A Command got a second handler; a Command has exactly one."""


# -- configuration -----------------------------------------------------------------------------


class ConfigError(BollydogError):
    """The configuration file or environment is invalid. The message names the key."""

    exit_code = 2


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

    status_code = 400
    exit_code = 2


class UnknownMessageError(MessageError, LookupError):
    """No message class is known by that name or path."""

    status_code = 404


class InvalidMessageError(MessageError, ValueError):
    """The fields given for a message are invalid.

    ``errors`` holds one dict per problem: ``{"field": ..., "message": ..., "type": ...}``.
    """

    status_code = 422
    fields = ("errors",)

    #: Problems reported at most; a body of ten thousand unknown fields must not answer with a
    #: ten-times-larger error (the count of the others is given).
    max_errors = 50

    def __init__(self, message_name: str, errors: list[dict[str, Any]]) -> None:
        if len(errors) > self.max_errors:
            left = len(errors) - self.max_errors
            errors = [*errors[: self.max_errors], {
                "field": "__more__", "message": f"{left} more problem(s) not listed", "type": "truncated",
            }]
        details = "; ".join(f"{str(e['field'])[:100]}: {e['message']}" for e in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"invalid {message_name}: {details}{more}")
        self.message_name = message_name
        self.errors = errors


class EventNotAcceptedError(MessageError, PermissionError):
    """A client tried to publish an Event whose class does not accept Events from clients
    (``accept_from_clients`` is False, the default): Events are stated by the application."""

    status_code = 403
    code = "EventNotAccepted"


class NoHandlerError(BollydogError, LookupError):
    """A Command was dispatched but no handler, local or remote, serves it."""

    status_code = 503


class HubError(BollydogError):
    """The hub cannot accept or run a message right now."""

    status_code = 503
    retry_after = 0.0  # temporary; how long is the entrypoint's guess (its retry_after)


class HubNotRunningError(HubError):
    """The hub is not started, or is stopping: it accepts no new message."""


class QueueFullError(HubError):
    """The hub's queue is at ``BOLLYDOG_QUEUE_MAX_SIZE``; retry later."""


class HandlerTimeoutError(BollydogError, TimeoutError):
    """A handler did not finish within the message's ``expire_time``."""

    status_code = 504


class WaitTimeoutError(BollydogError, TimeoutError):
    """A :class:`~bollydog.hub.waiting.WaitFor` did not get what it waited for in time.

    ``waiting_for`` names the Event class, ``timeout`` the seconds waited, ``got`` how many
    events it collected (sent along); ``received`` holds them (not sent: events stay inside).
    """

    status_code = 504
    fields = ("waiting_for", "timeout", "got")

    def __init__(self, message: str, *, waiting_for: str, timeout: float, got: int, received: list[Any]) -> None:
        super().__init__(message)
        self.waiting_for, self.timeout, self.got, self.received = waiting_for, timeout, got, received


class RunMismatchError(BollydogError):
    """A durable run cannot go on: its handler's code no longer matches its step log (another
    yield at a recorded step, another ``version``), or the run is not running. The run is
    parked; ``bollydog sagas`` shows it. ``run_id`` and ``step`` are sent along."""

    status_code = 409
    fields = ("run_id", "step")

    def __init__(self, message: str, *, run_id: str | None = None, step: int | None = None) -> None:
        super().__init__(message)
        self.run_id, self.step = run_id, step


class RunLeaseLostError(BollydogError):
    """This process no longer holds the durable run ``run_id``: another process took it over
    (its lease ran out here) or a person set it aside. Nothing of the step was committed; the
    run goes on, or stays aside, where it now is."""

    status_code = 409
    fields = ("run_id",)

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ConcurrentDispatchError(BollydogError, ExceptionGroup[Exception]):
    """Some of the messages yielded together as a list failed.

    ``results`` holds, in yield order, each result or the exception that replaced it.
    """

    results: list[Any]

    def __new__(cls, message: str, exceptions: Sequence[Exception], results: list[Any] | None = None) -> Self:
        self = super().__new__(cls, message, exceptions)
        self.results = list(results or [])
        return self

    def __init__(self, message: str, exceptions: Sequence[Exception], results: list[Any] | None = None) -> None:
        super().__init__(message, exceptions)

    # split() and subgroup() call derive() with some of this group's own exceptions: they are
    # Exceptions, and the part keeps the subclass (and its results). typeshed's overloads promise
    # a group generic in what it is given, which a non-generic subclass cannot express.
    def derive(self, excs: Sequence[Exception], /) -> ConcurrentDispatchError:  # type: ignore[override]
        return ConcurrentDispatchError(self.message, excs, self.results)


class EventHandlersError(BollydogError, ExceptionGroup[Exception]):
    """One or more handlers of an Event failed; the others ran to completion."""

    # As ConcurrentDispatchError.derive: the part keeps the subclass.
    def derive(self, excs: Sequence[Exception], /) -> EventHandlersError:  # type: ignore[override]
        return EventHandlersError(self.message, excs)


class TransportError(BollydogError):
    """A message could not be sent to, or answered by, another process."""

    status_code = 503  # the service behind is unreachable for now: retry later
    retry_after = 0.0


class NoConsumerError(TransportError):
    """A Command's domain runs in other processes, but none of them is consuming right now.

    Raised at once instead of queueing the command for a worker that may never come; the command
    was not sent, so it never runs later. Retry once a worker of the domain is up, or let the
    command class wait for one (``wait_for_consumer = True``). Over HTTP: 503 with Retry-After.
    """

    exit_code = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, retry later


class RemoteHandlerError(BollydogError):
    """A handler in another process failed with an exception this process cannot rebuild: its
    class is not imported here (or cannot be built from what the reply carries).

    ``error_type`` names the remote class (``module.QualName``, or the bare name of a builtin),
    ``remote_message`` is its text; ``info`` is the remote error's own mapping, so HTTP,
    WebSocket and the CLI answer exactly as the remote process would have.
    """

    def __init__(
        self, error_type: str, message: str, info: "ErrorInfo | None" = None, *,
        remote_args: list[Any] | None = None, remote_attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type, self.remote_message = error_type, message
        self.info = info if info is not None else ErrorInfo(500, error_type.rpartition(".")[2], 1, message, internal=True)
        # What the remote exception was built with: relayed as is to a further hop, which may
        # have the class and rebuild it.
        self.remote_args = list(remote_args) if remote_args is not None else [message]
        self.remote_attrs = dict(remote_attrs or {})


# -- the one mapping -----------------------------------------------------------------------------

#: What a client is told of an error without a mapping (its text is logged, with the trace id).
INTERNAL_MESSAGE = "internal error: the server's log has its details, under this request's trace id"


@dataclass(slots=True)
class ErrorInfo:
    """How one exception answers, on every surface."""

    status: int  # HTTP status
    code: str  # machine code: "error" of HTTP bodies and WebSocket frames
    exit_code: int  # CLI exit status
    message: str
    fields: dict[str, Any] = field(default_factory=dict)  # extra body / frame keys
    retry_after: float | None = None  # see ErrorMapping.retry_after
    headers: dict[str, str] = field(default_factory=dict)  # extra HTTP headers
    #: An error without a mapping: its text (a driver's SQL and parameters, a path...) is for
    #: the log and the process's own callers, not for clients (see :meth:`body`).
    internal: bool = False

    def __post_init__(self) -> None:
        # Whatever an error (or a reply from another process) says: an error answers with an
        # error status, never exits 0, and its fields never replace the body's own keys.
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            self.status = 500
        if not isinstance(self.exit_code, int) or self.exit_code == 0:
            self.exit_code = 1
        if not _RESERVED_BODY_KEYS.isdisjoint(self.fields):
            self.fields = {k: v for k, v in self.fields.items() if k not in _RESERVED_BODY_KEYS}

    def body(self, *, expose: bool = False) -> dict[str, Any]:
        """``{"error": code, "message": ..., **fields}``: an HTTP body, the core of a frame.
        An internal error's message says where its text is instead, unless ``expose`` (an
        entrypoint's ``debug``)."""
        message = INTERNAL_MESSAGE if self.internal and not expose else self.message
        return {"error": self.code, "message": message, **self.fields}


def public_attributes(error: BaseException) -> dict[str, Any]:
    """An exception's public instance attributes (``self.title = ...``), in set order."""
    return {k: v for k, v in getattr(error, "__dict__", {}).items() if not k.startswith("_")}


def describe(error: BaseException) -> ErrorInfo:
    """How ``error`` answers: from its :class:`ErrorMapping` attributes, else a server failure
    (500, exit 1) with its class name and message and no field."""
    if isinstance(error, RemoteHandlerError):
        return error.info
    if not isinstance(error, ErrorMapping):
        return ErrorInfo(500, type(error).__name__, 1, str(error), internal=True)
    names = error.fields
    attributes = public_attributes(error)
    if names is None:
        names = tuple(attributes)
    fields = {
        name: attributes[name] if name in attributes else getattr(error, name, None)
        for name in names
        if name not in _MAPPING_ATTRIBUTES
    }
    retry_after = error.retry_after
    return ErrorInfo(
        status=error.status_code,
        code=str(error.code or type(error).__name__),
        exit_code=error.exit_code,
        message=str(error),
        fields=fields,
        retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
        headers=dict(error.http_headers()),
    )


def brief(error: BaseException) -> str:
    """``error`` in a few words, for a message that reports several: a mapped error's code and
    message (public by design), an internal one's code only (its text may hold SQL and its
    parameters, and is in the log: see :attr:`ErrorInfo.internal`)."""
    info = describe(error)
    return info.code if info.internal else f"{info.code}: {info.message}"


def log_failure(logger: logging.Logger, error: BaseException, info: ErrorInfo, what: str, *args: Any) -> None:
    """Log a failure once, as its status deserves: a refusal (4xx) is an info line, a
    temporary condition (503, 504...) a warning line, a server failure (500) an error with
    its traceback. ``what % args`` says what failed."""
    if info.status == 500:
        level = logging.ERROR
    else:
        level = logging.INFO if info.status < 500 else logging.WARNING
    if logger.isEnabledFor(level):
        logger.log(
            level, f"{what}: %s: %s", *args, type(error).__name__, error,
            exc_info=error if level >= logging.ERROR else None,
            stacklevel=2,  # the record names the caller, not this helper
        )


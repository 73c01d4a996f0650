"""Messages: the pydantic models that carry every Command and Event.

Framework fields (:data:`RESERVED_FIELDS`) are declared here once; a subclass that declares one of
them fails at class definition. A message created while another is being handled joins its trace:
same ``trace_id``, ``parent_span_id`` = the parent's ``span_id``, same ``priority``.

The result slot :attr:`BaseMessage.state` is not a pydantic field, so
``Cls.model_validate(msg.model_dump())`` and JSON round-trips work.

One module (~550 lines) on purpose: the construction hot path (``model_post_init``), the
validation of untrusted input and the result slot all read the same private class state.
"""

from __future__ import annotations

import asyncio
import collections.abc
import getpass
import json
import random
import time
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from bollydog.context import AnonymousSession, current_session, get_session, handler_frame, new_span_id, new_trace_id, remote_parent
from bollydog.errors import InvalidMessageError, ReservedFieldError
from bollydog.settings import get_settings, settings_generation

_random_bits = random.getrandbits
_set_slot = object.__setattr__
_new_object = object.__new__
_now = time.time
_HEX32 = r"^[0-9a-f]{32}$"
_HEX16 = r"^[0-9a-f]{16}$"

#: Fields every message has. Entrypoints never let untrusted input set them.
RESERVED_FIELDS: frozenset[str] = frozenset(
    {
        "iid",
        "trace_id",
        "span_id",
        "parent_span_id",
        "created_time",
        "created_by",
        "expire_time",
        "delivery_count",
        "priority",
        "qos",
    }
)
#: Names a subclass may not use for a field: the reserved fields plus the class-level routing
#: attributes and the result slot.
_FORBIDDEN_FIELD_NAMES = RESERVED_FIELDS | {"name", "domain", "state", "wait_for_consumer"}
_CLASS_DEFAULTS = frozenset({"expire_time", "delivery_count", "qos"})
#: Reserved fields untrusted input may set (delivery preferences, not identity or trace).
CLIENT_SETTABLE_FIELDS: frozenset[str] = frozenset({"expire_time", "priority", "qos"})
_CLIENT_REFUSED = RESERVED_FIELDS - CLIENT_SETTABLE_FIELDS
#: What untrusted input may ask of those: a deadline of at least a millisecond and at most the
#: class's own default (a client cannot extend the server's timeout), a priority in this range.
CLIENT_MIN_EXPIRE_TIME = 0.001
CLIENT_PRIORITY_RANGE = (-100, 100)
#: Integers from untrusted input must fit 64 bits: databases store nothing larger.
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _new_iid() -> str:
    # 128 random bits like uuid4, at a tenth of its cost (this runs for every message).
    return new_trace_id()


class _Outcome:
    """The result slot of one message: a lazily created future plus partial-result listeners.

    Class-level defaults instead of ``__init__``: most messages only ever set ``done`` and
    ``result``, and this object is created for every message on the hot path.
    """

    done: bool = False
    result: Any = None
    error: BaseException | None = None
    future: asyncio.Future[Any] | None = None
    listeners: list[asyncio.Queue[Any]] | None = None
    forwarders: list[Callable[[Any], None]] | None = None


_END_OF_STREAM = object()


class BaseMessage(BaseModel):
    """Base of every message. Subclass :class:`Command` or :class:`Event`, not this.

    Class attributes (set them in a subclass, no annotation):

    - ``name``: routing name, default the lowercased class name.
    - ``domain``: owning domain, default the top-level package of the defining module.
    - ``default_expire_time``, ``default_delivery_count``, ``default_priority``,
      ``default_qos``: per-class defaults of the delivery fields.
    - ``wait_for_consumer`` (Commands; default False): when the command's domain runs in other
      processes and none of them is consuming, the transport refuses it at once
      (:class:`~bollydog.errors.NoConsumerError`) and never sends it. True queues it instead,
      until a consumer comes or ``expire_time`` runs out; queued, it may still run later
      (at-least-once), even after its caller stopped waiting.
    - ``mcp_annotations``: MCP tool hints of a Command (``readOnlyHint``, ``destructiveHint``,
      ``idempotentHint``, ``openWorldHint``, ``title``), see ``docs/mcp.md``.
    - ``accept_from_clients`` (Events; default False): whether a WebSocket client may publish
      this Event with a request frame. Events are facts the application states; one from
      outside is refused (``EventNotAcceptedError``, 403) unless its class sets this to True.
      HTTP and MCP serve Commands only.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: ClassVar[str] = "basemessage"
    domain: ClassVar[str] = "bollydog"
    default_expire_time: ClassVar[float | None] = None
    default_delivery_count: ClassVar[int] = 1
    default_qos: ClassVar[int] = 1
    wait_for_consumer: ClassVar[bool] = False
    mcp_annotations: ClassVar[Mapping[str, Any] | None] = None
    accept_from_clients: ClassVar[bool] = False

    # Framework fields are filled in model_post_init rather than by default factories: one
    # Python call instead of six, which matters on the dispatch hot path.
    iid: str = Field("", pattern=_HEX32, description="Unique message id.")
    trace_id: str = Field("", pattern=_HEX32, description="W3C trace id, shared by a trace.")
    span_id: str = Field("", pattern=_HEX16, description="W3C span id of this message.")
    parent_span_id: str | None = Field(None, pattern=_HEX16)
    created_time: float = Field(0.0, description="Unix time of creation.")
    created_by: str | None = Field(None, description="Username of the session that created it.")
    expire_time: float | None = Field(
        None, gt=0, description="Seconds a delivery may take; None takes the class default."
    )
    delivery_count: int | None = Field(
        None, ge=1, description="Deliveries allowed (1 = no retry); None takes the class default."
    )
    priority: int = Field(0, description="Higher runs first; inherited from the parent message.")
    qos: int | None = Field(
        None, ge=0, le=2, description="0 fire-and-forget, 1 at-least-once (default), 2 exactly-once."
    )

    _bd_defaults: ClassVar[Any] = None
    _bd_collections: ClassVar[Any] = None  # (class, its list/set/tuple fields): _collection_fields
    #: The ``domain`` its class body declares, if any (else the registry decides it).
    _bd_declared_domain: ClassVar[str | None] = None
    # A slot, not a PrivateAttr: it costs nothing until a result is awaited or set, and it stays
    # out of equality, dumps and copies.
    __slots__ = ("_bd_outcome",)
    if TYPE_CHECKING:
        # For the checker only: annotated in the class body, pydantic would make it a private
        # attribute instead of leaving it a slot.
        _bd_outcome: _Outcome | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        annotations = cls.__dict__.get("__annotations__", {})
        for field in annotations:
            if field in _FORBIDDEN_FIELD_NAMES:
                raise ReservedFieldError(
                    f"{cls.__qualname__}.{field}: '{field}' is a field reserved by bollydog "
                    f"messages; rename it (reserved: {', '.join(sorted(_FORBIDDEN_FIELD_NAMES))})"
                )
        for field in RESERVED_FIELDS & set(cls.__dict__):
            hint = (
                f"set the class default with 'default_{field}' instead"
                if field in _CLASS_DEFAULTS
                else "it is set by bollydog"
            )
            raise ReservedFieldError(
                f"{cls.__qualname__}.{field}: '{field}' is a reserved message field; {hint}"
            )
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.lower()
        declared = cls.__dict__.get("domain")
        type.__setattr__(cls, "_bd_declared_domain", declared)
        if declared is None:
            # Until a registry names it after the domain that serves it.
            cls.domain = cls.__module__.split(".")[0]

    def model_post_init(self, context: Any, /) -> None:
        _set_slot(self, "_bd_outcome", None)
        values, given = self.__dict__, self.__pydantic_fields_set__
        if not given.isdisjoint(RESERVED_FIELDS):
            self._fill_partial(values, given)
            return
        # The common case, a message created by user code, inlined: this runs for every message.
        # One random draw gives every id: iid (32 hex), span id (16), trace id (32) if new.
        bits = _random_bits(320).to_bytes(40).hex()
        values["iid"] = bits[:32]
        values["span_id"] = bits[32:48]
        frame = handler_frame.get()
        if frame is not None:
            parent = frame[0]
            values["trace_id"] = parent.trace_id
            values["parent_span_id"] = parent.span_id
            values["priority"] = parent.priority
        elif (remote := remote_parent.get()) is not None:
            values["trace_id"], values["parent_span_id"] = remote
        else:
            values["trace_id"] = bits[48:]
        values["created_time"] = _now()
        session = current_session.get()
        if session is not None:
            values["created_by"] = session.username
        cached = type(self)._bd_defaults
        if cached is None or cached[0] is not type(self) or cached[1] != settings_generation[0]:
            cached = type(self)._cache_defaults()
        values["expire_time"], values["delivery_count"], values["qos"] = cached[2]

    def _fill_partial(self, values: dict[str, Any], given: set[str]) -> None:
        if "iid" not in given:
            values["iid"] = _random_bits(128).to_bytes(16).hex()
        if "span_id" not in given:
            values["span_id"] = new_span_id()
        if "trace_id" not in given:
            frame = handler_frame.get()
            parent = frame[0] if frame is not None else None
            remote = remote_parent.get()
            if parent is not None:
                values["trace_id"] = parent.trace_id
                if "parent_span_id" not in given:
                    values["parent_span_id"] = parent.span_id
                if "priority" not in given:
                    values["priority"] = parent.priority
            elif remote is not None:
                values["trace_id"] = remote[0]
                if "parent_span_id" not in given:
                    values["parent_span_id"] = remote[1]
            else:
                values["trace_id"] = new_trace_id()
        if "created_time" not in given:
            values["created_time"] = _now()
        if "created_by" not in given and (session := current_session.get()) is not None:
            values["created_by"] = session.username
        expire_time, delivery_count, qos = type(self)._delivery_defaults()
        if values["expire_time"] is None:
            values["expire_time"] = expire_time
        if values["delivery_count"] is None:
            values["delivery_count"] = delivery_count
        if values["qos"] is None:
            values["qos"] = qos

    @classmethod
    def _delivery_defaults(cls) -> tuple[float, int, int]:
        """``(expire_time, delivery_count, qos)`` defaults of this class under current settings."""
        cached = cls.__dict__.get("_bd_defaults")
        if cached is None or cached[1] != settings_generation[0]:
            cached = cls._cache_defaults()
        return cached[2]

    @classmethod
    def _cache_defaults(cls) -> tuple[type, int, tuple[float, int, int]]:
        # Keyed by class (a subclass must not read its parent's entry) and by settings generation
        # (reload_settings() invalidates every entry).
        cached = (cls, settings_generation[0], (cls._class_expire_time(), cls.default_delivery_count, cls.default_qos))
        type.__setattr__(cls, "_bd_defaults", cached)
        return cached

    @classmethod
    def _class_expire_time(cls) -> float:
        if cls.default_expire_time is not None:
            return cls.default_expire_time
        settings = get_settings()
        return settings.event_expire_time if issubclass(cls, Event) else settings.command_expire_time

    # -- construction from untrusted input --------------------------------------------------

    @classmethod
    def from_input(cls, data: dict[str, Any], *, strings: bool = False) -> "BaseMessage":
        """Build a message from untrusted input (HTTP, WebSocket, CLI, agent).

        Identity and trace fields are refused; field errors become :class:`InvalidMessageError`,
        naming the message ``domain.name`` (the registry binds ``domain`` to the canonical one).
        ``strings=True`` accepts values given as text (query strings, command lines): ``"3"``
        for an int, ``"2024-01-01"`` for a date, JSON for list and dict fields.
        """
        errors: list[dict[str, Any]] = []
        if not data.keys().isdisjoint(_CLIENT_REFUSED):
            # Refused, and the rest still checked: the answer names every bad field at once.
            errors = [
                {"field": key, "message": "reserved field, cannot be set by a client", "type": "reserved"}
                for key in data
                if key in _CLIENT_REFUSED
            ]
            data = {key: value for key, value in data.items() if key not in _CLIENT_REFUSED}
        if strings:
            many = _collection_fields(cls)
            # Only text that opens JSON, or that a list field takes as its one element, changes:
            # most inputs have none, and are passed on as they are.
            for key, value in data.items():
                if type(value) is str and (value[:1] in "[{" or key in many):
                    data = {key: _decode_text(cls, key, value, many) for key, value in data.items()}
                    break
        try:
            message = cls(**data)
        except ValidationError as exc:
            raise InvalidMessageError(f"{cls.domain}.{cls.name}", [*errors, *validation_errors(exc)]) from None
        except RecursionError:  # a value nested deeper than the interpreter follows
            raise InvalidMessageError(
                f"{cls.domain}.{cls.name}",
                [*errors, {"field": "__root__", "message": "input nested too deeply", "type": "too_deep"}],
            ) from None
        if not data.keys().isdisjoint(CLIENT_SETTABLE_FIELDS):
            errors.extend(_client_setting_errors(cls, message, data))
        # Only what the client gave can be out of range (defaults are the code's own). Lax
        # validation turns JSON true into 1 (or 1.0): a number field given a boolean is
        # refused, as the OpenAPI document's "type": "integer" / "number" says.
        values = message.__dict__
        low, high = _INT64
        for key, given in data.items():
            value = values.get(key)
            kind = type(value)
            if kind is int or kind is float:
                if type(given) is bool:
                    errors.append({
                        "field": key, "message": f"must be {_NUMBER_KINDS[kind]}, not a boolean", "type": f"{kind.__name__}_type",
                    })
                elif kind is int and not low <= value <= high:  # type: ignore[operator]
                    errors.extend(_int_range_errors(value, (key,)))
            elif kind is not str and value is not None and kind is not bool:
                errors.extend(_int_range_errors(value, (key,)))  # containers and models
        if errors:
            raise InvalidMessageError(f"{cls.domain}.{cls.name}", errors)
        return message

    @classmethod
    def user_fields(cls) -> dict[str, Any]:
        """The model fields a user declared (reserved framework fields excluded)."""
        return {k: v for k, v in cls.model_fields.items() if k not in RESERVED_FIELDS}

    # -- result slot --------------------------------------------------------------------------

    def _slot(self) -> _Outcome:
        outcome = self._bd_outcome
        if outcome is None:
            outcome = _Outcome()
            _set_slot(self, "_bd_outcome", outcome)
        return outcome

    @property
    def state(self) -> asyncio.Future[Any]:
        """Awaitable result: the handler's return value, or its exception raised."""
        outcome = self._slot()
        if outcome.future is None:
            outcome.future = asyncio.get_running_loop().create_future()
            if outcome.done:
                self._settle_future(outcome)
        return outcome.future

    def has_outcome(self) -> bool:
        """True once a result or an error was set (``state`` would not wait)."""
        return self._bd_outcome is not None and self._bd_outcome.done

    def set_result(self, result: Any) -> None:
        outcome = self._bd_outcome
        if outcome is None:  # nobody is waiting yet: just record it
            outcome = _Outcome()
            outcome.done, outcome.result = True, result
            _set_slot(self, "_bd_outcome", outcome)
            return
        if outcome.done:
            return
        outcome.done, outcome.result = True, result
        self._finish(outcome)

    def set_exception(self, error: BaseException) -> None:
        outcome = self._slot()
        if outcome.done:
            return
        outcome.done, outcome.error = True, error
        self._finish(outcome)

    def _finish(self, outcome: _Outcome) -> None:
        if outcome.future is not None:
            self._settle_future(outcome)
        if outcome.listeners:
            for queue in outcome.listeners:
                queue.put_nowait(_END_OF_STREAM)

    @staticmethod
    def _settle_future(outcome: _Outcome) -> None:
        future = outcome.future
        if future is None or future.done():
            return
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.result)

    def emit_partial(self, value: Any) -> None:
        """Hand a partial result to every :meth:`stream` listener (and forwarder)."""
        outcome = self._bd_outcome
        if outcome is None:
            return
        if outcome.listeners:
            for queue in outcome.listeners:
                queue.put_nowait(value)
        if outcome.forwarders:
            for forward in outcome.forwarders:
                forward(value)

    def has_stream_listeners(self) -> bool:
        """True while some :meth:`stream` is being iterated: partial results have an audience.

        A transport asks for the partial results of a remote handler only then.
        """
        outcome = self._bd_outcome
        return outcome is not None and bool(outcome.listeners)

    def forward_partials(self, forward: Callable[[Any], None]) -> None:
        """Call ``forward(value)`` with every partial result from now on.

        Registered at once (not at a first iteration, as :meth:`stream` is) and called in the
        emitting task, so nothing emitted after this call is missed: how a transport relays the
        partial results of a message it runs for another process. ``forward`` must not raise.
        """
        outcome = self._slot()
        if outcome.forwarders is None:
            outcome.forwarders = []
        outcome.forwarders.append(forward)

    async def stream(self) -> AsyncIterator[Any]:
        """Partial results as they are produced, until the message completes.

        Start iterating before dispatching to see every partial result. The final result (or
        error) is then available from :attr:`state`.
        """
        outcome = self._slot()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        if outcome.listeners is None:
            outcome.listeners = []
        outcome.listeners.append(queue)
        try:
            if outcome.done:
                return
            while (item := await queue.get()) is not _END_OF_STREAM:
                yield item
        finally:
            outcome.listeners.remove(queue)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from ((k, v) for k, v in super().__repr_args__() if k not in RESERVED_FIELDS)
        yield "iid", self.iid


_NUMBER_KINDS: dict[type, str] = {int: "an integer", float: "a number"}


def _client_setting_errors(cls: type["BaseMessage"], message: "BaseMessage", data: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if "expire_time" in data and message.expire_time is not None:
        ceiling = cls._delivery_defaults()[0]
        if not CLIENT_MIN_EXPIRE_TIME <= message.expire_time <= ceiling:
            errors.append({
                "field": "expire_time", "type": "out_of_range",
                "message": f"must be between {CLIENT_MIN_EXPIRE_TIME} and {ceiling} seconds (the message's default)",
            })
    low, high = CLIENT_PRIORITY_RANGE
    if "priority" in data and not low <= message.priority <= high:
        errors.append({"field": "priority", "type": "out_of_range", "message": f"must be between {low} and {high}"})
    return errors


def _int_range_errors(value: Any, path: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Integers of ``value`` (a message's fields, nested models and containers) beyond 64 bits."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        low, high = _INT64
        if low <= value <= high:
            return []
        field = ".".join(map(str, path)) or "__root__"
        return [{"field": field, "message": "integer out of range (64-bit)", "type": "int_out_of_range"}]
    items: Any
    if isinstance(value, BaseModel):
        items = value.__dict__.items()
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = enumerate(value)
    else:
        return []
    errors: list[dict[str, Any]] = []
    for key, item in items:
        errors.extend(_int_range_errors(item, (*path, key)))
    return errors


def _decode_text(cls: type[BaseModel], key: str, value: Any, collections: frozenset[str]) -> Any:
    """A text value for a field: JSON for a list/dict field; for a list/set/tuple field (its
    name in ``collections``), text that does not open JSON is its one element (``?plates=A``);
    scalars rely on lax validation. Text opening a JSON list or object that does not parse is
    left as is: a field error, rather than a list of one malformed item."""
    if not isinstance(value, str):
        return value
    many = key in collections
    if value[:1] not in "[{":
        return [value] if many else value
    field = cls.__pydantic_fields__.get(key)
    if field is None or field.annotation is str:
        return value
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested beyond what json follows
        return value
    return [decoded] if many and not isinstance(decoded, list) else decoded


def _collection_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of ``cls`` whose type is a list, set or tuple, computed once per class (the
    entry names its class: a subclass has fields of its own)."""
    cached = getattr(cls, "_bd_collections", None)
    if cached is None or cached[0] is not cls:
        cached = (cls, frozenset(name for name, field in cls.__pydantic_fields__.items() if _is_collection(field.annotation)))
        type.__setattr__(cls, "_bd_collections", cached)
    return cached[1]


def _is_collection(annotation: Any) -> bool:
    """``list[str]``, ``set[int] | None``, ``Sequence[str]``...: not text, not a mapping."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_collection(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        return bool(arms) and all(_is_collection(arm) for arm in arms)
    kind = origin or annotation
    return (
        isinstance(kind, type)
        and issubclass(kind, (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set))
        and not issubclass(kind, (str, bytes, bytearray))
    )


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors as ``{"field", "message", "type"}`` dicts, fields dotted."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "__root__",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False)
    ]


class Command(BaseMessage):
    """A request to do one thing; it has exactly one handler."""


class Event(BaseMessage):
    """A fact that happened; any number of handlers react to it, concurrently."""


class Session(BaseModel):
    """Who is acting: set by an entrypoint, visible to every nested handler.

    Handlers always get one: an entrypoint sets it (the token's subject over HTTP, WebSocket
    and MCP; the OS user under ``bollydog execute`` and ``shell``), otherwise the hub gives the
    message an anonymous session (``username`` None) shared by everything it dispatches.
    """

    uid: str = Field(default_factory=_new_iid)
    username: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def anonymous(cls, uid: str | None = None) -> "Session":
        """A new session with no user (``data == {"anonymous": True}``, as every entrypoint
        gives an unauthenticated request); ``uid`` defaults to a new random id.

        The hub gives a top-level message no entrypoint gave a session to the one of uid
        ``message.iid`` (made when first read): an id already drawn, for a session that
        message starts.
        """
        # Built by hand, as model_construct would, at half its cost: this runs for every
        # top-level message and every request. (The slots are pydantic v2's.)
        session = _new_object(cls)
        _set_slot(session, "__dict__", {"uid": uid or _new_iid(), "username": None, "data": {"anonymous": True}})
        _set_slot(session, "__pydantic_fields_set__", {"uid"})
        _set_slot(session, "__pydantic_extra__", None)
        _set_slot(session, "__pydantic_private__", None)
        return session

    @classmethod
    def local_user(cls) -> "Session":
        """A session for the user running this process (``bollydog execute`` and ``shell``)."""
        try:
            username: str | None = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
            username = None
        return cls.model_construct(uid=_new_iid(), username=username, data={})

    @classmethod
    def current(cls) -> "Session | None":
        return get_session()


AnonymousSession.make = Session.anonymous


class BaseDomain(BaseModel):
    """Base of domain objects (entities, aggregates).

    Domain events raised with :meth:`raise_event` are collected by the UnitOfWork that saw the
    object and dispatched by the hub after the transaction commits.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    iid: str = Field(default_factory=_new_iid)
    created_time: float = Field(default_factory=time.time)
    updated_time: float = Field(default_factory=time.time)

    _events: list[Event] = PrivateAttr(default_factory=list)

    def raise_event(self, event: Event) -> None:
        self._events.append(event)

    def collect_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

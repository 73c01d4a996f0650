"""Handlers: how they are found in modules, how their parameters are injected, where they live.

A handler is a function whose first parameter is annotated with a message class, or a union of
message classes, or a message class that defines ``async def __call__(self)``. Coroutines, async
generators and plain ``def`` functions (run in a worker thread) are all accepted.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Union

from bollydog.context import get_app, get_hub, get_protocol, get_session
from bollydog.errors import (
    DuplicateHandlerError,
    HandlerRegistrationError,
    UnknownMessageError,
)
from bollydog.hub.threads import worker_threads
from bollydog.models.base import BaseMessage, Command, Event, Session
from bollydog.models.protocol import Protocol, UnitOfWork

COROUTINE, ASYNCGEN, SYNC = "coroutine", "asyncgen", "sync"


def _message_types(annotation: Any) -> tuple[type[BaseMessage], ...]:
    """The message classes named by an annotation: a class, ``Union[A, B]`` or ``A | B``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseMessage):
        return (annotation,)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if members and all(isinstance(a, type) and issubclass(a, BaseMessage) for a in members):
            return tuple(members)
    return ()


def _current_unit_of_work() -> UnitOfWork | None:
    protocol = get_protocol()
    return protocol.unit_of_work if protocol is not None else None


def _injector(annotation: Any) -> Callable[[], Any] | None:
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    if not isinstance(annotation, type):
        return None
    for base, getter in (
        (Session, get_session),
        (HubService, get_hub),
        (AppService, get_app),
        (Protocol, get_protocol),
        (UnitOfWork, _current_unit_of_work),
    ):
        if issubclass(annotation, base):
            return getter
    return None


class Handler:
    """One registered handler: the callable, what it handles, how to call it."""

    __slots__ = ("func", "qualname", "message_types", "kind", "injections", "app", "is_method", "start")

    def __init__(
        self,
        func: Callable[..., Any],
        message_types: tuple[type[BaseMessage], ...],
        *,
        is_method: bool = False,
    ) -> None:
        self.func = func
        self.qualname = f"{func.__module__}.{func.__qualname__}"
        self.message_types = message_types
        self.is_method = is_method
        self.app: Any = None
        if inspect.isasyncgenfunction(func):
            self.kind = ASYNCGEN
        elif inspect.iscoroutinefunction(func):
            self.kind = COROUTINE
        else:
            self.kind = SYNC
        self.injections = self._plan_injections()
        # ``start(message)`` begins a run: the function itself when there is nothing to add
        # (one frame less on the hot path), else the injecting wrapper.
        self.start = func if not self.injections and self.kind != SYNC else self._start_wrapped

    def _plan_injections(self) -> tuple[tuple[str, Callable[[], Any]], ...]:
        try:
            hints = typing.get_type_hints(self.func)
        except Exception as exc:  # unresolvable forward references
            raise HandlerRegistrationError(f"{self.qualname}: cannot read annotations: {exc}") from exc
        plan = []
        params = list(inspect.signature(self.func).parameters.values())[1:]
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            getter = _injector(hints.get(param.name))
            if getter is not None:
                plan.append((param.name, getter))
            elif param.default is param.empty:
                raise HandlerRegistrationError(
                    f"{self.qualname}: parameter '{param.name}' cannot be injected; annotate it "
                    "with Session, HubService, AppService, Protocol or UnitOfWork, or give it a default"
                )
        return tuple(plan)

    def _start_wrapped(self, message: BaseMessage) -> Any:
        """Start the handler: a coroutine, an async generator, or (sync) a thread coroutine.

        Plain functions run in :data:`~bollydog.hub.threads.worker_threads`, not in the loop's
        default executor: a shutdown must not wait for a thread it cannot stop.
        """
        if self.injections:
            kwargs = {name: getter() for name, getter in self.injections}
            if self.kind == SYNC:
                return worker_threads.run(self.func, message, **kwargs)
            return self.func(message, **kwargs)
        if self.kind == SYNC:
            return worker_threads.run(self.func, message)
        return self.func(message)

    def __repr__(self) -> str:
        names = ", ".join(t.__name__ for t in self.message_types)
        return f"<Handler {self.qualname} ({self.kind}) for {names}>"


def handler_of(obj: Any, *, strict: bool = False) -> Handler | None:
    """A Handler for ``obj`` if it is a handler function or a self-handling message class.

    ``strict``: unresolvable annotations are an error (explicit registration) instead of "not a
    handler" (discovery, which looks at every function of a module).
    """
    if isinstance(obj, type):
        if issubclass(obj, BaseMessage) and "__call__" in obj.__dict__:
            call = obj.__dict__["__call__"]
            if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
                raise HandlerRegistrationError(
                    f"{obj.__module__}.{obj.__qualname__}.__call__ must be 'async def'"
                )
            return Handler(call, (obj,), is_method=True)
        return None
    if not inspect.isfunction(obj):
        return None
    params = list(inspect.signature(obj).parameters.values())
    if not params:
        return None
    try:
        annotation = typing.get_type_hints(obj).get(params[0].name)
    except Exception as exc:
        if strict:
            raise HandlerRegistrationError(
                f"{obj.__module__}.{obj.__qualname__}: cannot resolve its annotations ({exc}); "
                "message classes must be importable from the handler's module"
            ) from exc
        return None  # discovery: a function whose annotations do not resolve is not a handler
    message_types = _message_types(annotation)
    return Handler(obj, message_types) if message_types else None


def discover(module: str | types.ModuleType) -> list[Handler]:
    """Every handler defined in ``module`` itself (imported names are ignored)."""
    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except Exception as exc:  # a user module may fail in any way while importing
            raise HandlerRegistrationError(
                f"cannot import handler module '{module}': {type(exc).__name__}: {exc}"
            ) from exc
    found = []
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        handler = handler_of(obj)
        if handler is not None:
            found.append(handler)
    return found


class HandlerRegistry:
    """Which handler serves which message, and message classes by name."""

    def __init__(self) -> None:
        self.commands: dict[type[BaseMessage], Handler] = {}
        self.events: dict[type[BaseMessage], list[Handler]] = {}
        self.messages: dict[str, list[type[BaseMessage]]] = {}
        #: Domains a message is known under: its own ``domain`` and the domain of the app whose
        #: handler serves it (a Command of package ``example`` served by app ``todo``).
        self.domains: dict[type[BaseMessage], set[str]] = {}
        #: Commands handled in other processes: class -> (domain, service name of its app).
        self.remote: dict[type[BaseMessage], tuple[str, str]] = {}
        self._event_cache: dict[type[BaseMessage], tuple[Handler, ...]] = {}

    def register(self, handler: Handler, app: Any = None) -> None:
        handler.app = app
        for message_type in handler.message_types:
            if issubclass(message_type, Event):
                self.events.setdefault(message_type, []).append(handler)
                self._event_cache.clear()
            else:
                existing = self.commands.get(message_type)
                if existing is not None and existing.func is not handler.func:
                    raise DuplicateHandlerError(
                        f"Command {message_type.__module__}.{message_type.__qualname__} has two "
                        f"handlers: {existing.qualname} and {handler.qualname}; "
                        "a Command has exactly one (use an Event for several)"
                    )
                self.commands[message_type] = handler
            self.add_message(message_type, getattr(app, "domain", None))

    def register_all(self, handlers: Iterable[Handler], app: Any = None) -> None:
        for handler in handlers:
            self.register(handler, app)

    def add_message(self, message_type: type[BaseMessage], domain: str | None = None) -> None:
        same_name = self.messages.setdefault(message_type.name, [])
        if message_type not in same_name:
            same_name.append(message_type)
        known = self.domains.setdefault(message_type, {message_type.domain})
        if domain:
            known.add(domain)

    def add_remote(self, message_types: Iterable[type[BaseMessage]], domain: str, service: str) -> None:
        """Messages of ``domain`` (app ``service``) that other processes handle: they resolve by
        name here and entrypoints serve them; the hub sends them through its transport."""
        for message_type in message_types:
            if not issubclass(message_type, Event) and message_type not in self.commands:
                self.remote[message_type] = (domain, service)
            self.add_message(message_type, domain)

    def qualified_name(self, message_type: type[BaseMessage]) -> str:
        """``domain.name``, with the serving app's domain when it differs from the class's."""
        served = sorted(self.domains.get(message_type, ()) - {message_type.domain})
        return f"{served[0] if served else message_type.domain}.{message_type.name}"

    def command_handler(self, message_type: type[BaseMessage]) -> Handler | None:
        return self.commands.get(message_type)

    def event_handlers(self, message_type: type[BaseMessage]) -> tuple[Handler, ...]:
        """Handlers of the event class and of its Event base classes."""
        cached = self._event_cache.get(message_type)
        if cached is None:
            cached = tuple(
                h
                for klass in message_type.__mro__
                if isinstance(klass, type) and issubclass(klass, Event)
                for h in self.events.get(klass, ())
            )
            self._event_cache[message_type] = cached
        return cached

    def message_classes(self) -> list[type[BaseMessage]]:
        return [cls for classes in self.messages.values() for cls in classes]

    def resolve(self, reference: str) -> type[BaseMessage]:
        """A message class from its registered name, ``domain.name`` or dotted import path."""
        candidates = self.messages.get(reference.lower(), [])
        if not candidates and "." in reference:
            domain, _, name = reference.rpartition(".")
            candidates = [
                c for c in self.messages.get(name.lower(), []) if domain in self.domains.get(c, {c.domain})
            ]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            options = ", ".join(self.qualified_name(c) for c in candidates)
            raise UnknownMessageError(f"message name '{reference}' is ambiguous: use one of {options}")
        return import_message(reference)


def import_message(path: str) -> type[BaseMessage]:
    """Import a message class by dotted path (``pkg.module.Class`` or ``pkg.module:Class``)."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        raise UnknownMessageError(f"unknown message '{path}': not a registered name or a dotted path")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageError(f"unknown message '{path}': {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, (Command, Event))):
        raise UnknownMessageError(f"'{path}' is not a Command or Event class")
    return obj

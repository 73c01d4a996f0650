"""Handlers: how they are found in modules, how their parameters are injected, where they live.

A handler is a function whose first parameter is annotated with a message class, or a union of
message classes, or a message class that defines ``async def __call__(self)``. Coroutines, async
generators and plain ``def`` functions (run in a worker thread) are all accepted.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sysconfig
import traceback
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

from bollydog.context import get_app, get_hub, get_protocol, get_session
from bollydog.errors import (
    HandlerRegistrationError,
)
from bollydog.hub.threads import worker_threads
from bollydog.models.base import BaseMessage, Command, Event, Session
from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.models.service import AppService
from bollydog.types import HubT

COROUTINE, ASYNCGEN, SYNC = "coroutine", "asyncgen", "sync"


#: Framework bases: a function taking one of them is a helper, not a handler of every message.
_BASES = (BaseMessage, Command, Event)


def _is_message_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseMessage) and obj not in _BASES


def _message_types(annotation: Any) -> tuple[type[BaseMessage], ...]:
    """The message classes named by an annotation: a class, ``Union[A, B]`` or ``A | B``."""
    if _is_message_class(annotation):
        return (annotation,)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if members and all(_is_message_class(a) for a in members):
            return tuple(members)
    return ()


def _current_unit_of_work() -> UnitOfWork | None:
    protocol = get_protocol()
    return protocol.unit_of_work if protocol is not None else None


def _injector(annotation: Any) -> Callable[[], Any] | None:
    if not isinstance(annotation, type):
        return None
    for base, getter in (
        (Session, get_session),
        (HubT, get_hub),
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
        self.app: AppService | None = None  # set when registered
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
                    "with Session, HubT (or HubService), AppService, Protocol or UnitOfWork, or give it a default"
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


def import_handler_module(module: str | types.ModuleType, *, where: str | None = None) -> types.ModuleType:
    """Import a handler module. ``where`` (``file:line`` of the config entry naming it) starts
    the error when no module has that name; an error raised while importing it names the
    user's line instead."""
    if not isinstance(module, str):
        return module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise HandlerRegistrationError(
                f"{where + ': ' if where else ''}cannot import handler module '{module}': "
                f"no module named '{missing}'"
            ) from None
        raise _import_error(module, exc) from exc
    except Exception as exc:  # a user module may fail in any way while importing
        raise _import_error(module, exc) from exc


def _import_error(module: str, exc: BaseException) -> HandlerRegistrationError:
    return HandlerRegistrationError(
        f"{_where(exc)}cannot import handler module '{module}': {type(exc).__name__}: {exc}"
    )


#: Frames of these files are the machinery of an import, not the line that made it fail.
_FRAMEWORK = (str(Path(__file__).resolve().parent) + os.sep, str(Path(importlib.__file__).resolve().parent) + os.sep)
_LIBRARIES = tuple(
    str(Path(p).resolve()) + os.sep for p in {sysconfig.get_path(n) for n in ("stdlib", "purelib", "platlib")} if p
)


def _where(exc: BaseException) -> str:
    """``file:line: `` of the user's line that failed to import, when it is known: the
    innermost frame outside bollydog, importlib and installed libraries (a reserved field
    refused by bollydog is the user's class statement, not bollydog's check)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: "
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<") and not _resolved(f.filename).startswith(_FRAMEWORK)
    ]
    own = [f for f in frames if not _resolved(f.filename).startswith(_LIBRARIES)]
    chosen = own or frames
    return f"{chosen[-1].filename}:{chosen[-1].lineno}: " if chosen else ""


def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except OSError:
        return filename


def messages_in(module: str | types.ModuleType) -> list[type[BaseMessage]]:
    """The message classes a handler module defines or imports: the messages its domain knows
    (events it publishes included), whether or not a handler of the module takes them."""
    namespace = vars(import_handler_module(module)).values()
    return [
        obj for obj in namespace
        if isinstance(obj, type) and issubclass(obj, (Command, Event)) and obj not in (Command, Event)
    ]


def discover(module: str | types.ModuleType) -> list[Handler]:
    """Every handler defined in ``module`` itself (imported names are ignored)."""
    module = import_handler_module(module)
    found = []
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        handler = handler_of(obj)
        if handler is not None:
            found.append(handler)
    return found


# The registry lives in its own module; this name stays importable from here.
from bollydog.registry import HandlerRegistry, ServedCommand, import_message  # noqa: E402

__all__ = [
    "ASYNCGEN", "COROUTINE", "SYNC", "Handler", "HandlerRegistry", "ServedCommand", "discover",
    "handler_of", "import_handler_module", "import_message", "messages_in",
]

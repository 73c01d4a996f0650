"""How a ``bollydog`` command ends: an error on stderr and the exit status it declares."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from bollydog.errors import BollydogError, MissingDependencyError, describe
from bollydog.settings import get_settings

T = TypeVar("T")

EXIT_HANDLER_FAILED = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def fail_with(exc: BaseException) -> NoReturn:
    """Exit as ``exc`` declares: ``error: <code>: <message>`` on stderr, its exit status."""
    info = describe(exc)
    fail(f"{info.code}: {info.message}", info.exit_code)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on the configured event loop and turn framework errors into CLI messages
    and exit statuses."""
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main())
    except BollydogError as exc:
        fail_with(exc)
    except KeyboardInterrupt:
        sys.exit(130)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``BOLLYDOG_EVENT_LOOP``: uvloop when installed (``auto``, the default), or as named."""
    choice = get_settings().event_loop
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise MissingDependencyError("BOLLYDOG_EVENT_LOOP=uvloop", "http", "uvloop") from None
        return None
    return uvloop.new_event_loop

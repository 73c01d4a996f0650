"""How a ``bollydog`` command ends: an error on stderr and the exit status it declares."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from bollydog.errors import BollydogError, describe

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
    """Run ``main`` and turn framework errors into CLI messages and exit statuses."""
    try:
        return asyncio.run(main())
    except BollydogError as exc:
        fail_with(exc)
    except KeyboardInterrupt:
        sys.exit(130)

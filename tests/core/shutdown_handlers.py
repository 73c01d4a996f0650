"""Handlers of the shutdown tests run in `bollydog service` subprocesses (domain ``shut``).

Each logs ``<name> started`` once it runs, so a test knows the work is in flight before it
sends a signal.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bollydog.models.base import Command

log = logging.getLogger("tests.shutdown")


class Nap(Command):
    """An async handler that sleeps."""

    domain = "shut"
    seconds: float


class Block(Command):
    """A plain-def handler that blocks its thread."""

    domain = "shut"
    seconds: float


class Stubborn(Command):
    """An async handler that ignores cancellation."""

    domain = "shut"
    seconds: float


async def nap(command: Nap) -> str:
    log.warning("nap started")
    await asyncio.sleep(command.seconds)
    return "rested"


def block(command: Block) -> str:
    log.warning("block started")
    time.sleep(command.seconds)
    return "unblocked"


async def stubborn(command: Stubborn) -> str:
    log.warning("stubborn started")
    deadline = time.monotonic() + command.seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(deadline - time.monotonic())
        except asyncio.CancelledError:
            pass  # bad manners, but a forced stop must not care
    return "done"


class Hog(Command):
    """An async handler that blocks the event loop itself (a bug, but it happens)."""

    domain = "shut"
    seconds: float


async def hog(command: Hog) -> str:
    log.warning("hog started")
    time.sleep(command.seconds)
    return "done"

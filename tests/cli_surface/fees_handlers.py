"""Domain "fees" of the CLI surface tests."""

from __future__ import annotations

from bollydog.models.base import Command


class Quote(Command):
    domain = "fees"
    hours: int


async def quote(command: Quote) -> int:
    return 2 * command.hours

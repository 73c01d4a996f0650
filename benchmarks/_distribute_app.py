"""The domain the distribute benchmark sends to another process (``bench``, one command).

A module of its own so that the front and the consumer processes name it the same way in their
``handlers`` config (``benchmarks._distribute_app``, with the repository root on ``sys.path``).
"""

from __future__ import annotations

from bollydog.models.base import Command


class Echo(Command):
    """``a + len(data)``: the payload travels to the consumer, a small result comes back."""

    domain = "bench"
    a: int
    data: str = ""


async def echo(command: Echo) -> int:
    return command.a + len(command.data)

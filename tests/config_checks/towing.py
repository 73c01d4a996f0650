"""A domain whose Command a rule sends and whose handler refuses it."""

from bollydog.models.base import Command


class Tow(Command):
    plate: str


async def tow(command: Tow) -> None:
    raise ValueError(f"no tow truck for {command.plate}")

"""A small domain the config checks point at."""

from bollydog.models.base import Command


class Park(Command):
    plate: str


async def park(command: Park) -> str:
    return f"parked {command.plate}"

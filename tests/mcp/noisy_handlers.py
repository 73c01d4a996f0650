"""A handler that prints: over stdio, its output must not reach the protocol on stdout."""

from bollydog.models.base import Command


class Shout(Command):
    """Print something, then answer."""

    text: str = "noise"


async def shout(command: Shout) -> str:
    print(f"{command.text} printed by a handler")
    return command.text.upper()

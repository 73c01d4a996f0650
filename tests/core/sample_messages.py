"""Messages shared by the core tests."""

from __future__ import annotations

from bollydog.models.base import Command


class Add(Command):
    a: int
    b: int


class Mul(Command):
    a: int
    b: int


class Ping(Command):
    pass


class Sleep(Command):
    seconds: float
    label: str = ""


class SyncWork(Command):
    seconds: float


class Whoami(Command):
    pass


class Imported(Command):
    pass


class SelfHandled(Command):
    """A message that handles itself."""

    text: str

    async def __call__(self) -> str:
        return self.text.upper()


async def imported_handler(command: Imported) -> str:
    return "imported"

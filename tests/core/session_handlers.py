"""Handlers that report the session and protocol they were given."""

from bollydog.models.base import Command, Session
from bollydog.models.protocol import Protocol
from bollydog.service.app import HubService


class WhoAmI(Command):
    nested: bool = False


class Remember(Command):
    key: str


async def who_am_i(command: WhoAmI, session: Session, hub: HubService) -> dict:
    me = {"username": session.username, "uid": session.uid}
    if command.nested:
        me["inner"] = await hub.execute(WhoAmI())
    return me


async def remember(command: Remember, protocol: Protocol) -> str:
    return type(protocol).__name__

"""A domain the rules of the tests send Commands to: it records alerts as state objects."""

from __future__ import annotations

from bollydog.models.base import Command, Event
from bollydog.rules.declare import RuleSet
from bollydog.rules.patterns import Match, Pattern
from bollydog.state.messages import PutObject
from bollydog.types import HubT

RAISED: list[tuple[str, float]] = []
NOTICED: list[str] = []


class RaiseAlert(Command):
    device: str
    temperature: float


class Noticed(Event):
    device: str


async def raise_alert(command: RaiseAlert, hub: HubT) -> None:
    RAISED.append((command.device, command.temperature))
    await hub.execute(PutObject(kind="alert", key=command.device, spec={"device": command.device}))


async def noticed(event: Noticed) -> None:
    NOTICED.append(event.device)


rules = RuleSet()


@rules.rule(Pattern("device", "env=prod", ["spec.temperature > 50"], name="d"), salience=-1)
def warm(match: Match) -> Noticed:
    return Noticed(device=match["d"].key)

"""Handlers of the rules service (registered by :class:`RulesService`)."""

from __future__ import annotations

from typing import Any

from bollydog.rules.messages import Explain, ListRules, Sync
from bollydog.rules.patterns import Not
from bollydog.rules.service import RulesService
from bollydog.state.messages import StateChanged


async def on_state_changed(event: StateChanged, app: RulesService) -> None:
    await app.observe(event)


async def explain(command: Explain, app: RulesService) -> dict[str, Any]:
    return await app.explain(command.rule)


async def list_rules(command: ListRules, app: RulesService) -> list[dict[str, Any]]:
    return [
        {"name": rule.name, "salience": rule.salience,
         "when": [str(e) if isinstance(e, Not) else str(e) for e in rule.when]}
        for rule in app.network.rules
    ]


async def sync(command: Sync, app: RulesService) -> dict[str, Any]:
    fired = await app.sync()
    return {"fired": [a.identity for a in fired], "facts": len(app.network.facts)}

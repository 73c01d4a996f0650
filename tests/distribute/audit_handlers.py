"""Domain "audit": a second consumer of calc's events (fan-out)."""

from __future__ import annotations

from tests.distribute.calc_handlers import NOTED, Noted


async def audit_noted(event: Noted) -> None:
    NOTED.append(("audit", event.text))

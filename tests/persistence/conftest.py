"""Fixtures of the persistence contract suite: one ``kit`` per adapter, a running hub around it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bollydog.errors import ConfigError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.persistence import handlers_contract
from tests.persistence.kits import HANDLERS, POSTGRES_ENV, Kit, make_kit, mark_unreachable

CONTRACT_ADAPTERS = ["memory", "sqlite", "postgresql"]


@pytest.fixture(params=CONTRACT_ADAPTERS)
async def kit(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Kit]:
    made = await make_kit(request.param, tmp_path)
    try:
        yield made
    finally:
        for cleanup in made.cleanups:
            await cleanup()


@pytest.fixture
async def hub(kit: Kit) -> AsyncIterator[HubService]:
    """A started hub whose one app ('contract') persists through the kit's protocol."""
    app = AppService.create_from(domain="contract", handlers=[HANDLERS], protocol=kit.protocol)
    hub = HubService(apps=[app])
    try:
        async with hub:
            yield hub
    except ConfigError as exc:  # the database did not answer at start-up
        if kit.name == "postgresql":
            mark_unreachable(os.environ[POSTGRES_ENV], str(exc))
        raise


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    handlers_contract.SEEN.clear()

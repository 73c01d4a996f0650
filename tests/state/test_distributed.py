"""The state service and the rules in two processes of a split deployment (Redis transport)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from bollydog.rules.messages import Sync
from bollydog.state.messages import ListObjects, PutObject
from tests.distribute.conftest import redis_url, prefix, wait_for  # noqa: F401  (fixtures)
from tests.rules import alerts
from tests.rules.test_service import OVERHEATING

SECTIONS: dict[str, Any] = {
    "state": {"app": "bollydog.state.service.StateService"},
    "alerts": {"handlers": ["tests.rules.alerts"]},
    "rules": {"app": "bollydog.rules.service.RulesService", "rules": [OVERHEATING]},
}


@asynccontextmanager
async def process(redis_url: str, prefix: str, hosts: list[str]):
    from bollydog.bootstrap import build

    cfg = {**SECTIONS, "distribute": {"app": "bollydog.transport.redis.RedisTransport", "url": redis_url,
                                      "prefix": prefix}}
    composition = build(cfg, exclude=[d for d in SECTIONS if d not in hosts], include=None, entrypoints=False)
    async with composition.hub as hub:
        yield hub


async def test_changes_in_one_process_fire_rules_in_another(redis_url, prefix):  # noqa: F811
    alerts.RAISED.clear()
    async with process(redis_url, prefix, ["state"]) as state_side:
        # Stored before the rules' process runs: loaded from the other process by rules.sync.
        await state_side.execute(PutObject(kind="device", key="d0", labels={"env": "prod"},
                                           spec={"temperature": 85}))
        async with process(redis_url, prefix, ["rules", "alerts"]) as rules_side:
            synced = await rules_side.execute(Sync())
            assert synced["facts"] == 1 and len(synced["fired"]) == 1
            await wait_for(lambda: alerts.RAISED == [("d0", 85.0)], timeout=10)
            # Written through the rules' process: the command crosses to the state service.
            stored = await rules_side.execute(PutObject(kind="device", key="d1", labels={"env": "prod"},
                                                        spec={"temperature": 90}))
            assert stored["version"] > 1  # a result from another process is its JSON
            await wait_for(lambda: alerts.RAISED == [("d0", 85.0), ("d1", 90.0)], timeout=10)
            listing: dict[str, Any] = {}

            async def alert_stored() -> bool:
                listing.update(await state_side.execute(ListObjects(kind="alert")))
                return len(listing["items"]) == 2

            for _ in range(200):
                if await alert_stored():
                    break
                await asyncio.sleep(0.02)
            assert [o.key for o in listing["items"]] == ["d0", "d1"]  # in its own process: objects

"""A process that dies between the commit and the publish: ``python -m tests.orchestration.outbox_crash CONFIG``.

It places one order (committed, its OrderPlaced in the outbox), and is SIGKILLed by its own
transport at the moment the event would be handed to Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from bollydog.bootstrap import build
from tests.orchestration.order_handlers import PlaceOrder


async def main(config: str) -> None:
    hub = build(config, exclude=["ship"], entrypoints=False).hub

    async def die(event: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    async with hub:
        hub.transport.publish = die  # type: ignore[method-assign]
        await hub.execute(PlaceOrder(order_id="crash-1"))
        await asyncio.sleep(5)  # the event's publication kills us meanwhile


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

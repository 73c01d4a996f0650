"""Start a durable run and die in its middle: ``python -m tests.orchestration.saga_crash CONFIG KEY``.

``SAGA_CRASH=before:N`` kills the process inside step N's handler (its write not committed);
``after:N`` kills it right after step N's transaction committed, before the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from bollydog.bootstrap import build
from tests.orchestration.saga_handlers import Effect, Fulfil


async def main(config: str, key: str) -> None:
    hub = build(config, entrypoints=False).hub
    crash = os.environ.get("SAGA_CRASH", "")

    def completed(message: Any, result: Any, error: BaseException | None) -> None:
        if isinstance(message, Effect) and crash == f"after:{message.step}":
            os.kill(os.getpid(), signal.SIGKILL)

    hub.hooks.completed.connect(completed)
    async with hub:
        await hub.execute(Fulfil(key=key))
    print("finished without crashing", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

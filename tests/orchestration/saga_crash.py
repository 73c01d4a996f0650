"""Start a durable run and die in its middle: ``python -m tests.orchestration.saga_crash CONFIG KEY [FAIL_AT]``.

``SAGA_CRASH=before:N`` kills the process inside step N's handler (its write not committed);
``after:N`` kills it right after step N's transaction committed, before the run goes on;
``undo-after:N`` right after the compensation of step N committed (with a failure at FAIL_AT).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from bollydog.bootstrap import build
from tests.orchestration.saga_handlers import Effect, Fulfil, Undo


async def main(config: str, key: str, fail_at: int = 0) -> None:
    hub = build(config, entrypoints=False).hub
    crash = os.environ.get("SAGA_CRASH", "")

    def completed(message: Any, result: Any, error: BaseException | None) -> None:
        if isinstance(message, Effect) and crash == f"after:{message.step}":
            os.kill(os.getpid(), signal.SIGKILL)
        if isinstance(message, Undo) and crash == f"undo-after:{message.step}":
            os.kill(os.getpid(), signal.SIGKILL)

    hub.hooks.completed.connect(completed)
    async with hub:
        await hub.execute(Fulfil(key=key, fail_at=fail_at))
    print("finished without crashing", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))

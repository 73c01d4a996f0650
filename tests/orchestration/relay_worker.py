"""A process serving the relay domain: ``python -m tests.orchestration.relay_worker CONFIG [KEY]``.

With ``KEY``, it starts a :class:`Relay` run (``RELAY_STEPS``, ``RELAY_HOLD`` from the
environment) and prints its id, and how it ended here to stderr; it serves until SIGTERM, then stops gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from bollydog.bootstrap import build
from tests.orchestration.relay_handlers import Relay


def outcome(state: asyncio.Future[Any]) -> None:
    ended = "cancelled" if state.cancelled() else repr(state.exception() or state.result())
    print(f"run ended here: {ended}", file=sys.stderr, flush=True)


async def main(config: str, key: str | None) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with build(config, entrypoints=False).hub as hub:
        if key is not None:
            run = Relay(key=key, steps=int(os.environ.get("RELAY_STEPS", "5")),
                        hold=float(os.environ.get("RELAY_HOLD", "0.3")))
            await hub.put_message(run)
            run.state.add_done_callback(outcome)
            print(run.iid, flush=True)
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))

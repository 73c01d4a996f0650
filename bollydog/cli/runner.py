"""Run a hub until SIGINT/SIGTERM: the first signal drains, a second one forces."""

from __future__ import annotations

import asyncio
import logging
import signal

from bollydog.service.app import HubService

log = logging.getLogger("bollydog.cli")


async def serve(hub: HubService) -> None:
    """Start ``hub`` (its apps and entrypoints), wait for a signal, stop it.

    First SIGINT/SIGTERM: entrypoints stop taking requests, in-flight work gets
    ``shutdown_grace`` seconds, then everything stops. Second signal: in-flight work is
    cancelled at once. Signal handlers are installed here only, so no server steals them.
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.warning("%s received: draining (again to force)", signal.Signals(signum).name)
            stop_requested.set()
        else:
            log.warning("%s received again: forcing shutdown", signal.Signals(signum).name)
            hub.force_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await hub.start()
        log.info("hub started: domains %s", ", ".join(hub.apps))
        stopped = asyncio.ensure_future(hub.wait_until_stopped())
        requested = asyncio.ensure_future(stop_requested.wait())
        await asyncio.wait([stopped, requested], return_when=asyncio.FIRST_COMPLETED)
        requested.cancel()
        await hub.stop()
        stopped.cancel()
        log.info("hub stopped")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

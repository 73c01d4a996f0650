"""Run a hub until SIGINT/SIGTERM: the first signal drains, a second one forces.

Before the hub starts, its required dependencies are checked (the transport's broker: one
``PING`` for Redis; databases are checked by their adapters as the apps start): one that is
down is a :class:`~bollydog.errors.ConfigError` naming it, so ``bollydog service`` exits 2 with
the reason on one line instead of running without it. With ``BOLLYDOG_PROBE_PORT`` set, a probe
server (``/livez``, ``/readyz``, ``/metrics``, see :mod:`bollydog.entrypoint.kit.health`) runs
from before the start to after the stop, so that it answers "starting" and "draining" too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from bollydog.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.entrypoint.kit.health import ProbeSettings
    from bollydog.entrypoint.kit.site import Site
    from bollydog.types import HubT

log = logging.getLogger("bollydog.cli")

#: Exit status of a complete stop, in-flight work cut at the end of the grace period included.
EXIT_STOPPED = 0
#: A forced stop exits with ``128 + the number of the second signal`` (130 for SIGINT, 143 for
#: SIGTERM), the shell's convention for "killed by that signal".
EXIT_FORCED_BASE = 128
#: Target: the process is gone this many seconds after the second signal, whatever handlers do.
FORCED_EXIT_WITHIN = 1.0
#: Seconds the forced stop gets to answer cut requests and close sockets before serve() returns.
_FORCED_STOP_TIME = 0.5

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def check_dependencies(hub: HubT) -> None:
    """Raise :class:`ConfigError` when the transport's broker cannot be reached."""
    problem = await hub.transport.probe()
    if problem is not None:
        raise ConfigError(f"{problem}; start it, or fix the transport's url in the config")


def probe_settings() -> "ProbeSettings | None":
    """The probe server's settings (``BOLLYDOG_PROBE_*``), None when no port is set."""
    from bollydog.entrypoint.kit.health import ProbeSettings

    settings = ProbeSettings.from_options({})
    return settings if settings.port is not None else None


async def start_probes(hub: HubT, settings: "ProbeSettings", port: int) -> "Site":
    """The probe server of ``hub`` on ``port``, listening (see the module documentation)."""
    from starlette.applications import Starlette

    from bollydog.entrypoint.kit.health import probe_routes
    from bollydog.entrypoint.kit.site import Site

    site = Site(settings.host, port, section="probes", env="BOLLYDOG_PROBE_PORT",
                log_level=settings.log_level, shutdown_timeout=1.0)
    await site.start(Starlette(routes=probe_routes(hub)))
    log.info("probes on %s (/livez, /readyz, /metrics)", site.url())
    return site


async def serve(
    hub: HubT, *, on_force: Callable[[int], None] | None = None, probes: "ProbeSettings | None" = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Start ``hub`` (its apps and entrypoints), wait for a signal, stop it; return the exit status.

    First SIGINT/SIGTERM: entrypoints stop taking requests, in-flight work gets
    ``shutdown_grace`` seconds, is cut after that, then everything stops: returns 0. Second
    signal: in-flight work is cancelled at once, without compensation, and this returns within
    a fraction of a second with ``128 + signal number``, even if the stop is not complete.
    ``on_force(signum)`` is called right away from the signal handler itself, on the main thread,
    even when a handler blocks the event loop (the CLI arms its exit timer there).
    ``on_started()`` is called once the hub runs (``--reload`` starts watching there).

    Signal handlers are installed here only (so no server steals them) and restored on return.
    ``probes`` (default: from ``BOLLYDOG_PROBE_*``) runs the probe server around it all.
    """
    settings = probes if probes is not None else probe_settings()
    port = settings.port if settings is not None else None
    site = await start_probes(hub, settings, port) if settings is not None and port is not None else None
    try:
        return await _serve(hub, on_force, on_started)
    finally:
        if site is not None:
            await site.stop()


async def _serve(
    hub: HubT, on_force: Callable[[int], None] | None, on_started: Callable[[], None] | None
) -> int:
    loop = asyncio.get_running_loop()
    # Signal handlers interrupt whatever runs, a handler too: their work must not run in (and
    # log with) that handler's context.
    context = contextvars.copy_context()
    stop_requested = asyncio.Event()
    forced = asyncio.Event()
    seen: list[int] = []

    def on_loop(signum: int, count: int) -> None:
        name = signal.Signals(signum).name
        if count == 1:
            log.warning("%s received: draining (again to force)", name)
            stop_requested.set()
        elif count == 2:
            log.warning("%s received again: forcing shutdown", name)
            hub.force_stop()
            forced.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # A plain signal handler, not loop.add_signal_handler: it runs between two bytecodes of
        # the main thread even while a handler blocks the loop, so a second signal always acts.
        seen.append(signum)
        if len(seen) == 2 and on_force is not None:
            on_force(signum)
        loop.call_soon_threadsafe(on_loop, signum, len(seen), context=context)

    previous: dict[int, Any] = {s: signal.signal(s, on_signal) for s in _SIGNALS}
    try:
        await check_dependencies(hub)
        await hub.start()
        log.info("hub started: domains %s", ", ".join(hub.apps))
        if on_started is not None:
            on_started()
        stopped = asyncio.ensure_future(hub.wait_until_stopped())
        requested = asyncio.ensure_future(stop_requested.wait())
        await asyncio.wait([stopped, requested], return_when=asyncio.FIRST_COMPLETED)
        requested.cancel()
        stopping = asyncio.ensure_future(hub.stop())
        forcing = asyncio.ensure_future(forced.wait())
        await asyncio.wait([stopping, forcing], return_when=asyncio.FIRST_COMPLETED)
        forcing.cancel()
        stopped.cancel()
        if forced.is_set():
            await asyncio.wait([stopping], timeout=_FORCED_STOP_TIME)
            if not stopping.done():
                log.warning("forced: the hub did not stop within %ss; leaving it", _FORCED_STOP_TIME)
                stopping.add_done_callback(_retrieve)
            else:
                stopping.result()
            status = EXIT_FORCED_BASE + seen[1]
            log.warning("forced stop: exit status %d", status)
            return status
        stopping.result()
        log.info("hub stopped")
        return EXIT_STOPPED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_now(status: int) -> None:
    """End the process at once with ``status``: flush the log and standard streams, then
    ``os._exit`` (no waiting for tasks, threads or ``atexit`` hooks)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):  # never a network exporter's flush
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(status)


def exit_soon(signum: int) -> None:
    """Make sure the process ends :data:`FORCED_EXIT_WITHIN` seconds after a second signal,
    from a daemon timer thread: it acts even if a handler blocks the event loop."""
    timer = threading.Timer(FORCED_EXIT_WITHIN * 0.9, exit_now, (EXIT_FORCED_BASE + signum,))
    timer.daemon = True
    timer.start()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

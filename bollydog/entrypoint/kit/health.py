"""Health probes: ``/livez``, ``/readyz`` and the Prometheus scrape ``/metrics``, for every
server that answers them (the HTTP entrypoint, a mounted app, the CLI's probe server).

* ``/livez``: 200 ``{"status": "alive"}`` while the process can answer and the hub has not
  crashed (503 once it has: restart me). It stays 200 while the hub drains.
* ``/readyz``: 200 ``{"status": "ready"}`` when the hub is running and taking work, every app
  and the transport have started and not stopped, and the transport reaches its broker (one
  bounded ``PING`` for Redis); otherwise 503 ``{"status": "unavailable", "reason": "..."}``:
  ``starting: ...`` before the start is over, ``draining: ...`` from the first signal on.
* ``/metrics``: the hub's :attr:`~bollydog.types.HubT.metrics_scrape` (the telemetry plugin's
  Prometheus reader), 404 with the way to turn it on when there is none.

:class:`ProbeSettings` are the options of the CLI's probe server for processes without an HTTP
entrypoint (``BOLLYDOG_PROBE_PORT``, see docs/operations.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bollydog.entrypoint.kit.settings import EntrypointSettings
from bollydog.types import HubT

if TYPE_CHECKING:  # pragma: no cover
    from mode import Service
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = ["PROBE_PATHS", "ProbeSettings", "Readiness", "liveness", "probe_routes", "readiness"]

#: The paths the probes take on a server that serves them.
PROBE_PATHS = ("/livez", "/readyz", "/metrics")
#: Seconds a readiness check waits for the transport's broker to answer.
CHECK_TIMEOUT = 2.0


class ProbeSettings(EntrypointSettings):
    """The probe server of ``bollydog service`` (``BOLLYDOG_PROBE_*``): off unless a port is set."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_PROBE_", extra="forbid")
    section: ClassVar[str] = "probes"

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535, description="Serve the probes here (0: a free port).")
    log_level: str = "warning"


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of a readiness check: ready, or the first reason it is not."""

    ready: bool
    reason: str = ""


def _state(service: "Service", what: str) -> str | None:
    """Why ``service`` is not running, or None."""
    if service.crashed:
        return _crashed(service, what)
    if not service.started:
        return f"starting: {what} has not started"
    if service.should_stop:
        return f"draining: {what} is stopping"
    return None


def _crashed(service: "Service", what: str) -> str:
    reason = service.crash_reason
    return f"{what} crashed: {type(reason).__name__}: {reason}" if reason is not None else f"{what} crashed"


def liveness(hub: HubT) -> Readiness:
    """Alive unless the hub crashed (a drain is no reason to restart the process)."""
    if hub.crashed:
        return Readiness(False, _crashed(hub, "the hub"))
    return Readiness(True)


async def readiness(hub: HubT, *, timeout: float = CHECK_TIMEOUT) -> Readiness:
    """Whether ``hub`` takes work now (see the module documentation)."""
    problem = _state(hub, "the hub")
    if problem is None:
        for app in hub.apps.values():
            problem = _state(app, f"domain {app.domain}")
            if problem is not None:
                break
    if problem is None:
        problem = _state(hub.transport, "the transport")
    if problem is None and not hub.accepting:
        problem = "draining: the hub takes no new work"
    if problem is None:
        try:
            async with asyncio.timeout(timeout):
                problem = await hub.transport.probe()
        except TimeoutError:
            problem = f"the transport's broker did not answer within {timeout}s"
    return Readiness(problem is None, problem or "")


def probe_routes(hub: HubT) -> "list[Route]":
    """The Starlette routes of the probes (see the module documentation) for ``hub``."""
    from starlette.routing import Route

    async def livez(request: "Request") -> "Response":
        return _answer(liveness(hub), "alive")

    async def readyz(request: "Request") -> "Response":
        return _answer(await readiness(hub), "ready")

    async def metrics(request: "Request") -> "Response":
        from starlette.responses import Response

        scrape = hub.metrics_scrape
        if not scrape:
            return _json({"error": "NotFound", "message": scrape.missing}, 404)
        body, content_type = scrape.render(request.headers.get("accept"))
        return Response(body, 200, media_type=content_type)

    return [
        Route("/livez", livez, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _answer(state: Readiness, ok: str) -> "Response":
    if state.ready:
        return _json({"status": ok}, 200)
    return _json({"status": "unavailable", "reason": state.reason}, 503)


def _json(body: Any, status: int) -> "Response":
    from starlette.responses import Response

    from bollydog.encoding import dumps

    return Response(dumps(body), status, media_type="application/json", headers={"cache-control": "no-store"})

"""bollydog inside an existing ASGI application: mount the routes of a config under a prefix.

::

    from fastapi import FastAPI
    from bollydog.asgi import asgi_app

    bolly = asgi_app("config.yaml")
    app = FastAPI(lifespan=bolly.lifespan)   # the hub starts and stops with the host
    app.mount("/bollydog", bolly)            # HTTP routes, WebSocket, MCP, probes

This is composition, as :mod:`bollydog.bootstrap` (which it uses) is: a config without an
``http`` section gets an HTTP service with the defaults; without a ``websocket`` section, a
WebSocket service at ``/ws``; with the ``mcp`` extra installed, the HTTP service also serves MCP
at ``/mcp`` unless the config says otherwise (``mcp=False`` turns it off). What the mount does
with them is :class:`~bollydog.entrypoint.asgi.BollydogApp`'s. See docs/operations.md.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from typing import Any

from bollydog.bootstrap import build
from bollydog.entrypoint.asgi import BollydogApp, HubContext, is_mcp_service
from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.websocket.app import SocketService
from bollydog.errors import ConfigError, MissingDependencyError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.types import Entrypoint, HubT

__all__ = ["BollydogApp", "HubContext", "asgi_app"]

#: Where the WebSocket service listens when the config has no ``websocket`` section.
DEFAULT_WS_PATH = "/ws"
#: Where the HTTP service serves MCP when the config does not say (and the extra is installed).
DEFAULT_MCP_PATH = "/mcp"


def asgi_app(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    hub: HubT | None = None,
    apps: Iterable[AppService] = (),
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    mcp: bool | None = None,
) -> BollydogApp:
    """The ASGI app serving ``config`` (a file or a dict, as ``bollydog service --config``;
    ``include``/``exclude`` as its flags), or a hub built in code (``hub``), or a new hub of
    ``apps``, for a host application to mount (see the module documentation).

    ``mcp``: None serves MCP at ``/mcp`` when the ``mcp`` extra is installed (and the config's
    ``http`` section sets no ``mcp_path``), True requires it, False leaves it out.
    """
    if sum(x is not None for x in (config, hub)) + bool(apps) > 1:
        raise ConfigError("asgi_app: give one of config, hub or apps")
    if hub is None:
        if apps:
            hub = HubService(apps)
        else:
            hub = build(config, include=include, exclude=exclude).hub
    entrypoints = list(hub.entrypoints)
    http = next((e for e in entrypoints if isinstance(e, HttpService)), None)
    if http is None:
        http = HttpService()
        _add_entrypoint(hub, http)
    if not any(isinstance(e, SocketService) for e in entrypoints):
        _add_entrypoint(hub, SocketService(path=DEFAULT_WS_PATH))
    _mcp_on_http(http, mcp, others=any(is_mcp_service(e) for e in entrypoints))
    return BollydogApp(hub, hub.entrypoints)


def _add_entrypoint(hub: HubT, entrypoint: Entrypoint) -> None:
    add = getattr(hub, "add_entrypoint", None)
    if add is None:
        raise ConfigError(f"asgi_app: {type(hub).__name__} cannot take entrypoints (no add_entrypoint)")
    add(entrypoint)


def _mcp_on_http(http: Any, mcp: bool | None, *, others: bool) -> None:
    """Serve MCP on the HTTP service at /mcp, as ``mcp`` asks (see :func:`asgi_app`)."""
    installed = importlib.util.find_spec("mcp") is not None
    if mcp is False:
        if http.settings.mcp_path:
            http.settings = http.settings.model_copy(update={"mcp_path": None})
        return
    if mcp and not installed:
        raise MissingDependencyError("MCP in a mounted app", "mcp", "mcp")
    if installed and not http.settings.mcp_path and not others:
        http.settings = http.settings.model_copy(update={"mcp_path": DEFAULT_MCP_PATH})

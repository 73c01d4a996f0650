"""``bollydog mcp``: the hub of a config with the MCP service alone, over stdio or HTTP.

The config's own ``mcp`` section (a section whose ``app`` is :class:`McpService`), if any, gives
the options (``include``, ``public_key``...); ``--transport`` overrides its transport. The
config's HTTP sections are not served, but their GET-only routes still mark tools read-only,
so a tool looks the same whether ``bollydog service`` or ``bollydog mcp`` serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bollydog.config import ModuleRef
from bollydog.entrypoint.mcp.app import McpService

__all__ = ["serve_mcp"]


async def serve_mcp(
    config: str | None,
    *,
    transport: str = "stdio",
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> None:
    """Build the hub of ``config`` (``include``/``exclude`` select its domains, as for
    ``bollydog service``), serve MCP until SIGINT/SIGTERM or, over stdio, until the client
    closes stdin."""
    from bollydog.bootstrap import build
    from bollydog.cli.runner import serve
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.http.settings import HttpSettings

    composition = build(config, include=list(include), exclude=list(exclude), entrypoints=False)
    options: dict[str, Any] = {}
    http: list[HttpSettings] = []
    for key, section in composition.config.items():
        target = _app_of(key, section)
        if isinstance(target, type) and issubclass(target, McpService):
            options = {k: v for k, v in section.items() if k != "app"}
        elif isinstance(target, type) and issubclass(target, HttpService):
            http.append(HttpSettings.from_options({k: v for k, v in section.items() if k != "app"}))
    options["transport"] = transport
    service = McpService(http_settings=http, **options)
    composition.hub.add_entrypoint(service)
    await serve(composition.hub)
    await service.wait_closed()


def _app_of(key: str, section: Any) -> Any:
    if not isinstance(section, Mapping):
        return None
    ref = section.get("app")
    if isinstance(ref, str):
        ref = ModuleRef(ref, key=f"{key}.app")
    return ref.resolve() if isinstance(ref, ModuleRef) else None

"""The MCP entrypoint: every Command an MCP tool, for AI agents (``docs/mcp.md``).

Needs the ``mcp`` extra (the official MCP Python SDK, 2.x); importing this package without it
raises :class:`~bollydog.errors.MissingDependencyError`. The service class is
:class:`bollydog.entrypoint.mcp.app.McpService`; ``bollydog mcp --config ...`` serves it alone.
"""

from importlib.metadata import PackageNotFoundError, version

from bollydog.errors import MissingDependencyError

try:
    _major = int(version("mcp").split(".")[0])
    import mcp.server.lowlevel  # noqa: F401
except (ImportError, PackageNotFoundError, ValueError) as exc:  # pragma: no cover - extras
    raise MissingDependencyError("the MCP entrypoint", "mcp", "mcp") from exc
if _major < 2:  # pragma: no cover - the 1.x SDK has another server API
    raise MissingDependencyError("the MCP entrypoint", "mcp", "mcp>=2")

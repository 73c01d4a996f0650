"""The HTTP entrypoint: every Command at ``/{domain}/{app name}/{message name}``.

Needs the ``http`` extra (starlette, uvicorn, pyjwt); importing this package without it raises
:class:`~bollydog.errors.MissingDependencyError`. The service class is
:class:`bollydog.entrypoint.http.app.HttpService`.
"""

from bollydog.errors import MissingDependencyError

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("HTTP entrypoint", "http", exc.name or "starlette") from exc

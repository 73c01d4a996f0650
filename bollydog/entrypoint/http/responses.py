"""JSON responses of the HTTP entrypoint, and error responses.

Every error body is ``{"error": <code>, "message": <text>, <fields>}`` with the status, code and
fields the error declares (:func:`bollydog.errors.describe`): 422 adds ``"errors"``
(``[{"field", "message", "type"}]``), 401 ``"reason"``, a domain error its public attributes;
with ``debug`` a 5xx adds ``"traceback"``. Bodies are encoded by the kit
(:func:`bollydog.encoding.dumps`), as every entrypoint's answers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Router

from bollydog.entrypoint.kit.admission import retry_after as retry_seconds
from bollydog.encoding import dumps
from bollydog.errors import BollydogError, describe, log_failure

__all__ = ["JSON", "RequestError", "ResultResponse", "dumps", "error_response", "http_exception", "json_response"]

log = logging.getLogger("bollydog.http")

JSON = "application/json"


class RequestError(BollydogError):
    """The HTTP request itself is unusable (malformed body, unsupported media type...)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        # Per instance: one class for every kind of unusable request.
        self.status_code, self.code = status, error


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, JSON)


_JSON_TYPE = (b"content-type", JSON.encode("latin-1"))


class ResultResponse(Response):
    """A 200 JSON answer (a message's result) whose headers are already bytes: what
    ``Response(body, 200, headers, JSON)`` sends, the same headers in the same order, without
    encoding and searching a mapping of them for every request."""

    media_type = JSON

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        raw_headers.append((b"content-length", str(len(body)).encode("latin-1")))
        raw_headers.append(_JSON_TYPE)
        self.raw_headers = raw_headers


def error_response(
    exc: BaseException,
    *,
    debug: bool = False,
    retry_after: int = 1,
    headers: Mapping[str, str] | None = None,
    context: str = "",
    quiet: bool = False,
) -> Response:
    """The response for ``exc``: its status code, a JSON body, and the headers it needs.

    ``retry_after`` is the ``Retry-After`` of errors that are temporary for an unknown time
    (queue full, stopping). ``quiet``: not logged here; for what happened to an admitted
    message, which the hub logs (a handler's failure) or which is a refusal, answered only."""
    info = describe(exc)
    headers = {**(headers or {}), **info.headers}
    seconds = retry_seconds(exc, retry_after)
    if seconds is not None:
        headers["retry-after"] = str(seconds)
    body = info.body(expose=debug)
    if not quiet:
        log_failure(log, exc, info, "%s failed", context or "request")
    if debug and info.status >= 500:
        body["traceback"] = traceback.format_exception(exc)
    return json_response(body, info.status, headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 no route, 405 method not allowed) as JSON."""
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    error = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    path = request.url.path
    if exc.status_code == 404:
        # Under a mount (FastAPI app.mount) the documents are below the mount point too.
        message = f"no route for {path}; see {request.scope.get('root_path', '')}/openapi.json for the routes"
        if path.endswith("/") and _routed(request, path.rstrip("/")):
            message += f" (without the trailing slash: {path.rstrip('/')})"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {path}"
    else:
        message = str(exc.detail)
    return json_response({"error": error, "message": message}, exc.status_code, exc.headers)


def _routed(request: Request, path: str) -> bool:
    """Whether a route of the request's app serves ``path`` (with any method)."""
    scope = {**request.scope, "path": path}
    router: Router = request.app.router
    return any(route.matches(scope)[0] is not Match.NONE for route in router.routes)

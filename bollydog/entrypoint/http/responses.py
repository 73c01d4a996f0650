"""JSON responses of the HTTP entrypoint, and the mapping from errors to status codes.

Every error body is ``{"error": <type>, "message": <text>}``; 422 adds ``"errors"``
(``[{"field", "message", "type"}]``); with ``debug`` a 500 adds ``"traceback"``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bollydog.entrypoint.auth import AuthError
from bollydog.entrypoint.http.qos import RateLimitedError, retry_after_header
from bollydog.errors import (
    BollydogError,
    HandlerTimeoutError,
    HubNotRunningError,
    InvalidMessageError,
    NoConsumerError,
    NoHandlerError,
    QueueFullError,
)

log = logging.getLogger("bollydog.http")

JSON = "application/json"


class RequestError(BollydogError):
    """The HTTP request itself is unusable (malformed body, unsupported media type...)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


def dumps(value: Any) -> bytes:
    """JSON bytes of a handler result; values JSON cannot hold become their ``str()``, and
    NaN/Infinity become ``null`` (JSON has no literal for them)."""
    return to_json(value, fallback=str, inf_nan_mode="null")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, JSON)


def error_response(
    exc: BaseException,
    *,
    debug: bool = False,
    retry_after: int = 1,
    headers: dict[str, str] | None = None,
    context: str = "",
) -> Response:
    """The response for ``exc``: its status code, a JSON body, and the headers it needs."""
    headers = dict(headers or {})
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, InvalidMessageError):
        status = 422
        body["errors"] = exc.errors
    elif isinstance(exc, RequestError):
        status, body["error"] = exc.status, exc.error
    elif isinstance(exc, AuthError):
        status = 401
        body["reason"] = exc.reason
        headers["www-authenticate"] = f'Bearer error="invalid_token", error_description="{exc.reason}"'
    elif isinstance(exc, RateLimitedError):
        status = 429
        headers["retry-after"] = retry_after_header(exc.retry_after)
    elif isinstance(exc, (QueueFullError, HubNotRunningError, NoConsumerError)):
        status = 503
        headers["retry-after"] = str(retry_after)
    elif isinstance(exc, HandlerTimeoutError):
        status = 504
    elif isinstance(exc, NoHandlerError):
        status = 503
    else:
        status = 500
        log.error("%s failed: %s: %s", context or "request", type(exc).__name__, exc, exc_info=exc)
        if debug:
            body["traceback"] = traceback.format_exception(exc)
    return json_response(body, status, headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 no route, 405 method not allowed) as JSON."""
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    error = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    message = {
        404: f"no route for {request.url.path}; see /openapi.json for the routes",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return json_response({"error": error, "message": message}, exc.status_code, exc.headers)

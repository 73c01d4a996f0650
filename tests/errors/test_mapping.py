"""One mapping for every error: ``describe``."""

from __future__ import annotations

import json

import pytest

from bollydog.entrypoint.auth import AuthError
from bollydog.entrypoint.http.qos import RateLimitedError
from bollydog.entrypoint.http.responses import error_response
from bollydog.errors import (
    ConfigError,
    DomainError,
    ErrorMapping,
    HandlerTimeoutError,
    InvalidMessageError,
    NoHandlerError,
    QueueFullError,
    UnknownMessageError,
    describe,
)


class Declined(DomainError):
    status_code = 402
    code = "deposit_declined"
    exit_code = 4

    def __init__(self, amount: float) -> None:
        super().__init__(f"a deposit of {amount} was declined")
        self.amount = amount
        self._attempt = 1  # private: never sent


class Gone(LookupError, ErrorMapping):  # the mixin on any exception class
    status_code = 410


@pytest.mark.parametrize(
    "error, status, code, exit_code",
    [
        (Declined(5.0), 402, "deposit_declined", 4),
        (Gone("moved"), 410, "Gone", 1),
        (DomainError("no"), 400, "DomainError", 1),
        (ValueError("boom"), 500, "ValueError", 1),
        (InvalidMessageError("shop.order", []), 422, "InvalidMessageError", 2),
        (UnknownMessageError("no message x"), 404, "UnknownMessageError", 2),
        (ConfigError("bad key"), 500, "ConfigError", 2),
        (AuthError("expired token", "expired"), 401, "AuthError", 1),
        (RateLimitedError("slow down", 2.5), 429, "RateLimitedError", 1),
        (QueueFullError("full"), 503, "QueueFullError", 1),
        (NoHandlerError("nobody"), 503, "NoHandlerError", 1),
        (HandlerTimeoutError("late"), 504, "HandlerTimeoutError", 1),
    ],
)
def test_errors_carry_their_mapping(error, status, code, exit_code):
    info = describe(error)
    assert (info.status, info.code, info.exit_code, info.message) == (status, code, exit_code, str(error))


def test_fields_are_the_public_attributes_or_the_declared_ones():
    assert describe(Declined(5.0)).body() == {
        "error": "deposit_declined", "message": "a deposit of 5.0 was declined", "amount": 5.0,
    }
    assert describe(DomainError("no", sku="a", message="not a field")).fields == {"sku": "a"}
    assert describe(AuthError("bad", "expired")).fields == {"reason": "expired"}
    assert describe(RateLimitedError("slow", 1.0)).fields == {}
    assert describe(ValueError("no fields for unmapped errors")).fields == {}


def test_an_instance_may_override_its_class_and_a_bad_status_answers_500():
    error = Declined(1.0)
    error.status_code = 409
    assert describe(error).status == 409
    error.status_code = 200  # an error never answers 2xx
    assert describe(error).status == 500


def test_http_headers_and_retry_after_come_from_the_error():
    response = error_response(AuthError("expired token", "expired"))
    assert response.status_code == 401 and "expired" in response.headers["www-authenticate"]
    assert json.loads(response.body) == {"error": "AuthError", "message": "expired token", "reason": "expired"}
    assert error_response(RateLimitedError("slow", 2.5)).headers["retry-after"] == "3"
    assert error_response(QueueFullError("full"), retry_after=7).headers["retry-after"] == "7"
    assert "retry-after" not in error_response(Declined(1.0)).headers

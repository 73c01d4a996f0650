"""One mapping for every error (``describe``), and errors rebuilt from Redis replies."""

from __future__ import annotations

import json
import sys

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
    RemoteHandlerError,
    UnknownMessageError,
    describe,
)
from bollydog.transport import wire


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


def _through_redis(error: BaseException) -> BaseException:
    """What the caller raises when a remote handler raised ``error``."""
    reply = wire.encode_reply("0" * 32, "1-0", error=error)
    assert all(isinstance(v, str) for v in reply.values())  # a flat map of strings
    ok, decoded = wire.decode_reply(reply)
    assert not ok
    return decoded


@pytest.mark.parametrize(
    "error",
    [Declined(5.0), Gone("moved"), ValueError("boom"), KeyError("sku"),
     InvalidMessageError("shop.order", [{"field": "a", "message": "missing", "type": "missing"}]),
     AuthError("expired token", "expired"), HandlerTimeoutError("late")],
)
def test_an_importable_class_comes_back_as_itself(error):
    decoded = _through_redis(error)
    assert type(decoded) is type(error)
    assert str(decoded) == str(error) and decoded.args == error.args
    assert describe(decoded) == describe(error)


def test_a_class_unknown_here_is_a_remote_error_that_answers_like_it():
    def local_class() -> type[DomainError]:
        class Lent(DomainError):  # <locals>: no process can look it up
            status_code = 409
            exit_code = 3
            retry_after = 60

        return Lent

    error = local_class()("dune is lent", title="dune")
    decoded = _through_redis(error)
    assert isinstance(decoded, RemoteHandlerError)
    assert decoded.error_type.endswith("local_class.<locals>.Lent")
    assert decoded.remote_message == "dune is lent"
    assert describe(decoded) == describe(error)
    assert json.loads(error_response(decoded).body) == json.loads(error_response(error).body)
    assert error_response(decoded).status_code == 409
    # Relayed by a further process, it still describes the original.
    again = _through_redis(decoded)
    assert isinstance(again, RemoteHandlerError) and again.error_type == decoded.error_type
    assert describe(again) == describe(error)


@pytest.mark.parametrize(
    "error_type",
    ["tests.errors.never_imported.Boom",  # a module this process has not imported
     "KeyboardInterrupt",  # not an Exception
     "os.path",  # a module, not a class
     "os.getcwd",  # not a class
     "__main__.Boom",  # another program's __main__
     "tests.errors.test_mapping.Gone.__init__"],
)
def test_the_wire_never_imports_nor_builds_anything_but_known_exceptions(error_type):
    reply = {"v": "1", "id": "x", "entry": "1-0", "ok": "0", "error_type": error_type, "error": "text"}
    ok, decoded = wire.decode_reply(reply)
    assert isinstance(decoded, RemoteHandlerError) and decoded.error_type == error_type
    assert describe(decoded).status == 500 and describe(decoded).code == error_type.rpartition(".")[2]
    assert "tests.errors.never_imported" not in sys.modules


def test_old_and_foreign_replies_still_decode():
    # Only the fields of the first reply format, or junk where JSON is expected.
    ok, decoded = wire.decode_reply({"ok": "0", "error_type": "shop.errors.OutOfStock", "error": "none left"})
    assert isinstance(decoded, RemoteHandlerError) and str(decoded) == "shop.errors.OutOfStock: none left"
    ok, decoded = wire.decode_reply({"ok": "0", "error_type": "ValueError", "error": "bad", "error_args": "{",
                                     "error_attrs": "[1]", "error_status": "x"})
    assert type(decoded) is ValueError and str(decoded) == "bad"
    ok, decoded = wire.decode_reply({"ok": "0", "error_type": "x.Y", "error": "t", "error_status": "200",
                                     "error_exit": "0", "error_fields": '{"error": "spoof", "k": 1}'})
    info = describe(decoded)
    assert (info.status, info.exit_code, info.body()) == (500, 1, {"error": "Y", "message": "t", "k": 1})

"""JWT authentication of every entrypoint (HTTP, WebSocket, MCP): transport-neutral.

An entrypoint builds one :class:`Authenticator` from its settings (the
:class:`~bollydog.entrypoint.kit.settings.JwtSettings` block) with :func:`authenticator`, and
asks it for the :class:`Session` of each request's headers (plus a token its transport carries
elsewhere, such as a WebSocket query parameter). Without a public key every request gets an
anonymous session. Underneath, :func:`authenticate` verifies a token and
:func:`session_from_claims` turns its claims into a session. Any failure is an
:class:`AuthError`; never a bare pyjwt error.

Only asymmetric signatures (RS256 by default) are accepted: the service holds a public key and
cannot mint tokens itself unless it is also given the private key (:func:`issue_token`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bollydog.entrypoint.kit.settings import DEFAULT_ALGORITHMS, JwtSettings
from bollydog.errors import BollydogError, ConfigError, MissingDependencyError
from bollydog.models.base import Session

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError("JWT authentication", "http", exc.name or "pyjwt") from exc

__all__ = [
    "AuthError",
    "Authenticator",
    "anonymous",
    "authenticate",
    "authenticator",
    "issue_token",
    "load_private_key",
    "load_public_key",
    "session_from_claims",
    "token_from_headers",
]

_PEM_PREFIX = "-----BEGIN"


class AuthError(BollydogError):
    """A request is not authenticated: no token where one is required, or a bad token.

    ``reason`` is a short machine-readable code: ``missing``, ``expired``, ``not_yet_valid``,
    ``invalid_signature``, ``invalid_audience``, ``invalid_issuer``, ``malformed``, ``invalid``.
    """

    status_code = 401
    fields = ("reason",)

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason

    def http_headers(self) -> dict[str, str]:
        return {"www-authenticate": f'Bearer error="invalid_token", error_description="{self.reason}"'}


def _read_pem(value: str | bytes, what: str) -> bytes:
    """PEM bytes from PEM text or from the path of a file holding it."""
    if isinstance(value, bytes):
        return value
    text = value.strip()
    if text.startswith(_PEM_PREFIX):
        # Environment variables often carry PEM with literal "\n" escapes.
        return text.replace("\\n", "\n").encode()
    path = Path(text).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{what}: '{text[:60]}' is neither PEM text (-----BEGIN ...) nor a readable file: "
            f"{exc.strerror or exc}"
        ) from None


def load_public_key(value: str | bytes) -> Any:
    """A public key object from PEM text or a file path; :class:`ConfigError` if unusable."""
    pem = _read_pem(value, "public key")
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigError(f"public key: not a PEM public key ({exc})") from None


def load_private_key(value: str | bytes, password: bytes | None = None) -> Any:
    """A private key object from PEM text or a file path; :class:`ConfigError` if unusable."""
    pem = _read_pem(value, "private key")
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"private key: not a usable PEM private key ({exc})") from None


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token of ``x-access-token`` or ``Authorization: Bearer <token>`` (header names in
    lower case, as ASGI and most clients give them); None when neither is present."""
    token = headers.get("x-access-token")
    if token:
        return token.strip()
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        raise AuthError("Authorization header must be 'Bearer <token>'", "malformed")
    return None


def authenticate(
    token: str | None,
    *,
    public_key: Any,
    required: bool = True,
    algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = 0,
) -> dict[str, Any] | None:
    """Verify ``token`` and return its claims; None when there is no token and none is required.

    ``public_key`` is a key object (:func:`load_public_key`) or PEM text. ``exp`` and ``nbf``
    are checked when present; ``audience``/``issuer`` when given. Every failure raises
    :class:`AuthError` with a message fit for the client.
    """
    if not token:
        if required:
            raise AuthError(
                "authentication required: send 'Authorization: Bearer <token>' or 'x-access-token'",
                "missing",
            )
        return None
    if isinstance(public_key, (str, bytes)):
        public_key = load_public_key(public_key)
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired", "expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("token not yet valid (nbf/iat in the future)", "not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token audience not accepted", "invalid_audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token issuer not accepted", "invalid_issuer") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature invalid", "invalid_signature") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(
            f"token algorithm not accepted (accepted: {', '.join(algorithms)})", "invalid"
        ) from None
    except jwt.DecodeError:
        raise AuthError("token malformed", "malformed") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"token invalid: {exc}", "invalid") from None
    except Exception as exc:  # a key/token combination pyjwt or cryptography cannot handle
        raise AuthError(f"token invalid: {type(exc).__name__}", "invalid") from None
    if not isinstance(claims, dict):  # pragma: no cover - pyjwt always returns a dict
        raise AuthError("token payload is not a JSON object", "malformed")
    return claims


def session_from_claims(claims: Mapping[str, Any] | None) -> Session:
    """A :class:`Session`: username from ``sub`` (or ``username``), claims kept in ``data``.

    ``None`` claims give an anonymous session (``username`` None).
    """
    if not claims:
        return anonymous()
    username = claims.get("sub") or claims.get("username")
    return Session(
        username=str(username) if username is not None else None,
        data={"anonymous": False, "claims": dict(claims)},
    )


def anonymous() -> Session:
    """A new session with no user, as every entrypoint gives an unauthenticated request:
    ``username`` None, ``data == {"anonymous": True}``."""
    return Session.anonymous()  # built without validation: this runs once per request


class Authenticator(Protocol):
    """Who sent a request, from its headers: what an entrypoint asks once per request."""

    @property
    def enabled(self) -> bool:
        """True when requests are checked (a public key is configured)."""
        ...

    def session(self, headers: Mapping[str, str], token: str | None = None) -> Session:
        """The request's session. ``token``: one the transport carries outside the headers
        (used when the headers have none). Raises :class:`AuthError` to refuse the request."""
        ...


class _Anonymous:
    """No public key: every request is anonymous, whatever it carries."""

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return False

    def session(self, headers: Mapping[str, str], token: str | None = None) -> Session:
        return anonymous()


class _Jwt:
    """A public key: every request's token is verified with the settings' rules."""

    __slots__ = ("settings", "public_key")

    def __init__(self, settings: JwtSettings, public_key: Any) -> None:
        self.settings, self.public_key = settings, public_key

    @property
    def enabled(self) -> bool:
        return True

    def session(self, headers: Mapping[str, str], token: str | None = None) -> Session:
        s = self.settings
        claims = authenticate(
            token_from_headers(headers) or token,
            public_key=self.public_key,
            required=s.auth_required,
            algorithms=s.jwt_algorithms,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            leeway=s.jwt_leeway,
        )
        return session_from_claims(claims)


def authenticator(settings: JwtSettings) -> Authenticator:
    """The authenticator of ``settings``: JWT checks with its public key, else anonymous.

    Loads the key now: an unusable ``public_key`` is a :class:`ConfigError` at construction,
    not at the first request.
    """
    if not settings.public_key:
        return _Anonymous()
    return _Jwt(settings, load_public_key(settings.public_key))


def issue_token(
    claims: Mapping[str, Any],
    private_key: Any,
    *,
    expires_in: float | None = 3600,
    algorithm: str = DEFAULT_ALGORITHMS[0],
) -> str:
    """Sign ``claims`` (``exp``/``iat`` added unless given) with ``private_key`` (key object,
    PEM text or path). For services that log users in, and for tests."""
    if isinstance(private_key, (str, bytes)):
        private_key = load_private_key(private_key)
    payload = dict(claims)
    now = int(time.time())
    payload.setdefault("iat", now)
    if expires_in is not None:
        payload.setdefault("exp", now + int(expires_in))
    return jwt.encode(payload, private_key, algorithm=algorithm)

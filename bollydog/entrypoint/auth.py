"""JWT authentication shared by the entrypoints: :mod:`bollydog.entrypoint.kit.auth`.

This path stays for applications that mint or check tokens themselves (``issue_token``,
``authenticate``...).
"""

from bollydog.entrypoint.kit.auth import (
    AuthError,
    Authenticator,
    anonymous,
    authenticate,
    authenticator,
    issue_token,
    load_private_key,
    load_public_key,
    session_from_claims,
    token_from_headers,
)

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

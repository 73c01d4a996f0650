"""The transport-neutral JWT functions of bollydog.entrypoint.auth."""

import pytest

from bollydog.entrypoint.auth import (
    AuthError,
    authenticate,
    issue_token,
    session_from_claims,
    token_from_headers,
)


def test_authenticate_function(keys, other_keys):
    claims = authenticate(keys.token(sub="carol"), public_key=keys.public_pem, required=True)
    assert claims["sub"] == "carol"
    assert authenticate(None, public_key=keys.public_pem, required=False) is None
    with pytest.raises(AuthError) as err:
        authenticate(None, public_key=keys.public_pem, required=True)
    assert err.value.reason == "missing"
    with pytest.raises(AuthError) as err:
        authenticate(keys.token(sub="c", exp=1), public_key=keys.public_pem)
    assert err.value.reason == "expired"
    with pytest.raises(AuthError) as err:
        authenticate(other_keys.token(sub="c"), public_key=keys.public_pem)
    assert err.value.reason == "invalid_signature"
    token = keys.token(sub="c", aud="api", iss="me")
    assert authenticate(token, public_key=keys.public_pem, audience="api", issuer="me")["sub"] == "c"
    with pytest.raises(AuthError):
        authenticate(token, public_key=keys.public_pem, audience="other")


def test_token_helpers(keys):
    token = issue_token({"sub": "dave"}, keys.private_pem, expires_in=60)
    assert authenticate(token, public_key=keys.public_pem)["sub"] == "dave"
    assert token_from_headers({"authorization": "Bearer abc"}) == "abc"
    assert token_from_headers({"x-access-token": "xyz", "authorization": "Bearer abc"}) == "xyz"
    assert token_from_headers({}) is None
    with pytest.raises(AuthError):
        token_from_headers({"authorization": "Token abc"})
    assert session_from_claims(None).username is None
    assert session_from_claims({"sub": "e"}).username == "e"

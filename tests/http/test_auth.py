"""JWT (RS256) authentication: the transport-neutral function and the HTTP behaviour."""

import time

import jwt
import pytest
import pytest_asyncio

from bollydog.entrypoint.auth import (
    AuthError,
    authenticate,
    issue_token,
    session_from_claims,
    token_from_headers,
)
from bollydog.entrypoint.http.app import HttpService
from bollydog.errors import ConfigError

from conftest import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secured(keys):
    async with serve(public_key=keys.public_pem) as running:
        yield running


@pytest.fixture
def sclient(secured):
    return secured[2]


async def test_bearer_token_sets_the_session(sclient, keys):
    r = await sclient.get("/demo/svc/echo", params={"text": "a"},
                          headers={"Authorization": f"Bearer {keys.token(sub='alice')}"})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "alice" and body["created_by"] == "alice" and body["anonymous"] is False


async def test_x_access_token_and_username_claim(sclient, keys):
    r = await sclient.get("/demo/svc/echo", params={"text": "a"},
                          headers={"x-access-token": keys.token(username="bob")})
    assert r.status_code == 200 and r.json()["user"] == "bob"


def _bad_tokens(keys, other_keys):
    now = int(time.time())
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(b'{"sub":"mallory"}').decode()
    return {
        "expired": keys.token(sub="a", exp=now - 60),
        "not_yet_valid": keys.token(sub="a", nbf=now + 600),
        "forged": other_keys.token(sub="a"),
        "alg_none": f"{header}.{payload}.",
        "hs256_with_public_key": jwt.encode({"sub": "a"}, "a-shared-secret-that-is-long-enough!", algorithm="HS256"),
        "garbage": "not.a.token",
        "random": "abc",
    }


@pytest.mark.parametrize(
    "kind", ["expired", "not_yet_valid", "forged", "alg_none", "hs256_with_public_key", "garbage", "random"]
)
async def test_bad_tokens_are_401(sclient, keys, other_keys, kind):
    token = _bad_tokens(keys, other_keys)[kind]
    r = await sclient.get("/demo/svc/ping", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "AuthError"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_missing_token_401(sclient):
    r = await sclient.get("/demo/svc/ping")
    assert r.status_code == 401 and r.json()["reason"] == "missing"
    r = await sclient.get("/demo/svc/ping", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and r.json()["reason"] == "malformed"


async def test_openapi_stays_public_and_documents_security(sclient):
    r = await sclient.get("/openapi.json")
    assert r.status_code == 200
    assert "bearerAuth" in r.json()["components"]["securitySchemes"]


async def test_outcomes_are_visible_only_to_their_sender(sclient, keys):
    alice = {"Authorization": f"Bearer {keys.token(sub='alice')}"}
    bob = {"Authorization": f"Bearer {keys.token(sub='bob')}"}
    r = await sclient.get("/demo/svc/ping", params={"qos": "0"}, headers=alice)
    assert r.status_code == 202
    location = r.headers["location"]
    assert (await sclient.get(location)).status_code == 401
    assert (await sclient.get(location, headers=bob)).status_code == 404
    assert (await sclient.get(location, headers=alice)).status_code == 200


async def test_optional_auth_allows_anonymous_but_rejects_bad_tokens(keys, other_keys):
    async with serve(public_key=keys.public_pem, auth_required=False) as (_, _, client):
        r = await client.get("/demo/svc/echo", params={"text": "a"})
        assert r.status_code == 200 and r.json()["user"] is None
        r = await client.get("/demo/svc/echo", params={"text": "a"},
                             headers={"x-access-token": other_keys.token(sub="x")})
        assert r.status_code == 401


async def test_without_a_key_tokens_are_ignored(client):
    r = await client.get("/demo/svc/echo", params={"text": "a"}, headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200 and r.json()["anonymous"] is True


async def test_public_key_from_file_and_env(tmp_path, keys, monkeypatch):
    path = tmp_path / "key.pub"
    path.write_text(keys.public_pem)
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_PUBLIC_KEY", str(path))
    service = HttpService(port=0)
    assert service.auth.enabled
    with pytest.raises(ConfigError, match="public key"):
        HttpService(port=0, public_key=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="public key"):
        HttpService(port=0, public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    with pytest.raises(ConfigError, match="asymmetric"):
        HttpService(port=0, jwt_algorithms=["HS256"])

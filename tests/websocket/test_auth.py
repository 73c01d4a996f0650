"""JWT (RS256) on the WebSocket: a token in a header or the ``access_token`` query parameter."""

from __future__ import annotations

import pytest

pytest.importorskip("jwt")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from bollydog.entrypoint.auth import issue_token  # noqa: E402
from bollydog.errors import ConfigError  # noqa: E402
from bollydog.entrypoint.websocket.app import SocketService  # noqa: E402
from tests.websocket.conftest import call, recv, start  # noqa: E402


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


async def test_token_in_header_or_query_sets_the_session(keys) -> None:
    private_pem, public_pem = keys
    hub, service = await start(public_key=public_pem)
    try:
        token = issue_token({"sub": "ann"}, private_pem)
        async with connect(service.url, additional_headers={"Authorization": f"Bearer {token}"}) as client:
            frames = await call(client, {"name": "whoami"})
            assert frames[-1]["data"]["username"] == "ann"
            assert frames[-1]["data"]["created_by"] == "ann"
        async with connect(f"{service.url}?access_token={token}") as client:
            assert (await call(client, {"name": "echo", "text": "q"}))[-1]["type"] == "result"
    finally:
        await hub.stop()


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_missing_or_bad_token_is_refused_with_a_reason(keys, token) -> None:
    _, public_pem = keys
    hub, service = await start(public_key=public_pem)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with connect(service.url, additional_headers=headers) as client:
            reply = await recv(client)
            assert reply["type"] == "error" and reply["error"] == "AuthError"
            if token is None:  # the way browsers have, named too
                assert "?access_token=<token> in the URL" in reply["message"]
            with pytest.raises(ConnectionClosed):
                await recv(client)
            assert client.close_code == 1008
    finally:
        await hub.stop()


async def test_optional_auth_lets_anonymous_clients_in(keys) -> None:
    _, public_pem = keys
    hub, service = await start(public_key=public_pem, auth_required=False)
    try:
        async with connect(service.url) as client:
            assert (await call(client, {"name": "echo", "text": "anon"}))[-1]["type"] == "result"
    finally:
        await hub.stop()


def test_unusable_public_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="public key"):
        SocketService(public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")

"""Fixtures of the HTTP entrypoint tests: a real uvicorn on 127.0.0.1 port 0, a real client.

Servers are shared per module (``loop_scope="module"``) so that the suite stays fast; tests
that need special options start their own with :func:`serve`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).parent))

from bollydog.entrypoint.http.app import HttpService  # noqa: E402
from bollydog.models.service import AppService  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402

ROUTER_MAPPING = {
    "demo.ping": {"methods": ["GET"], "aliases": ["/ping", "/health/ping"]},
    "demo.add": {"methods": ["POST"]},
    "demo.tally": {"debounce": 0.5},
    "demo.slow": {"rate_limit": "2/s"},
}


def demo_app() -> AppService:
    return AppService(domain="demo", name="svc", handlers=["http_sample_app"])


@contextlib.asynccontextmanager
async def serve(
    hub_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[HubService, HttpService, httpx.AsyncClient]]:
    """A started hub with the demo app and an HttpService on a free port, and a client."""
    hub = HubService(apps=[demo_app()], **(hub_options or {}))
    http = hub.add_entrypoint(HttpService(port=0, **options))
    async with hub:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            yield hub, http, client


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server():
    async with serve(router_mapping=ROUTER_MAPPING) as running:
        yield running


@pytest.fixture
def client(server) -> httpx.AsyncClient:
    return server[2]


class Keys:
    """An RSA key pair (PEM text) and helpers to mint tokens with it."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key = key
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def token(self, expires_in: float | None = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iat": now, **claims}
        if expires_in is not None:
            payload.setdefault("exp", now + int(expires_in))
        return jwt.encode(payload, self.private_key, algorithm="RS256")


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def other_keys() -> Keys:
    return Keys()


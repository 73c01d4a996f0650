"""The AsyncAPI 3.0 document of the transport: checked by the official parser
(``@asyncapi/parser`` under node), and against the registry it is generated from.

The parser lives in ``.cache/asyncapi`` (``.ci/run`` installs it:
``npm install --prefix .cache/asyncapi @asyncapi/parser@3``); without node or the parser the
validation tests skip locally and fail in CI (``BOLLYDOG_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bollydog.bootstrap import build
from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.http.openapi import build_openapi
from bollydog.entrypoint.kit.asyncapi import build_asyncapi

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = Path(__file__).with_name("validate.cjs")
MODULES = Path(os.environ.get("ASYNCAPI_NODE_MODULES", ROOT / ".cache" / "asyncapi" / "node_modules"))
INSTALL = "npm install --prefix .cache/asyncapi @asyncapi/parser@3"


def parse(document: dict[str, Any]) -> dict[str, Any]:
    """The official parser's verdict: ``{"parsed", "version", "diagnostics"}``; exit status 0
    when the document has no error."""
    node = shutil.which("node")
    missing = None if node else "node is not installed"
    if node and not (MODULES / "@asyncapi" / "parser").is_dir():
        missing = f"@asyncapi/parser is not in {MODULES} (run: {INSTALL})"
    if missing:
        if os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1":
            pytest.fail(f"the AsyncAPI validator is required: {missing}", pytrace=False)
        pytest.skip(missing)
    run = subprocess.run(
        [node, str(VALIDATOR)], input=json.dumps(document), capture_output=True, text=True, timeout=60,
        env={**os.environ, "ASYNCAPI_NODE_MODULES": str(MODULES)},
    )
    verdict: dict[str, Any] = json.loads(run.stdout)
    verdict["ok"] = run.returncode == 0
    return verdict


def errors(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in verdict["diagnostics"] if d["severity"] == 0]


def split_config(url: str = "redis://10.1.2.3:6390/2") -> dict[str, Any]:
    distribute = {"app": "bollydog.transport.redis.RedisTransport", "url": url, "prefix": "shop1"}
    return {
        "library": {"app": "bollydog.models.service.AppService", "name": "desk", "handlers": ["libraryapp.handlers"]},
        "example": {"app": "example.app.ExampleService", "handlers": ["example.handler", "example.shop"]},
        "distribute": distribute,
    }


@pytest.fixture(autouse=True)
def library_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "apps"))


@pytest.mark.parametrize("config", ["example/config.yaml", "tests/apps/library.yaml"])
def test_the_documents_of_the_example_and_the_library_are_valid_asyncapi_3(config: str) -> None:
    document = build_asyncapi(build(ROOT / config, entrypoints=False).hub)
    verdict = parse(document)
    assert verdict["ok"] and errors(verdict) == [], verdict
    assert verdict["version"] == "3.0.0"


def test_a_split_deployment_documents_its_redis_streams_and_is_valid() -> None:
    composition = build(split_config(), exclude=["example"], entrypoints=False)
    hub = composition.hub
    document = build_asyncapi(hub)
    assert parse(document)["ok"]
    assert document["servers"] == {"redis": {"host": "10.1.2.3:6390", "protocol": "redis", "pathname": "/2"}}
    transport: Any = hub.transport
    # Channels are the transport's own stream keys; a remote domain's too (its commands go there).
    for domain in ("library", "example"):
        for band in ("high", "normal"):
            assert document["channels"][f"{domain}.{band}"]["address"] == transport.stream(domain, band)
    assert document["channels"]["example.normal"]["address"] == "shop1:stream:example:normal"
    assert document["channels"]["replies"]["address"] == "shop1:reply:{consumer}"
    example = document["channels"]["example.normal"]["messages"]
    assert {"example.placeorder", "example.restock", "example.orderplaced"} <= set(example)
    library = document["channels"]["library.normal"]["messages"]
    assert "library.borrow" in library and "example.placeorder" not in library


def test_messages_are_named_canonically_with_the_openapi_payload_schemas() -> None:
    composition = build(ROOT / "tests/apps/library.yaml")
    hub = composition.hub
    document = build_asyncapi(hub)
    registry = hub.registry
    (http,) = [e for e in composition.entrypoints if isinstance(e, HttpService)]
    http.build_app()
    openapi = build_openapi(http.routes)
    for served in registry.served_commands():
        name = registry.name_of(served.message)
        if name.startswith("bollydog."):
            continue
        message = document["components"]["messages"][name]
        assert message["name"] == name
        schema = message["payload"]["$ref"].rsplit("/", 1)[1]
        # One schema for both documents: what a client posts is what a producer puts in payload.
        assert document["components"]["schemas"][schema] == openapi["components"]["schemas"][schema]
        assert "iid" not in document["components"]["schemas"][schema]["properties"]
        operation = document["operations"][f"{name}.send"]
        assert operation["action"] == "send" and operation["reply"]["channel"] == {"$ref": "#/channels/replies"}
    header = document["components"]["messages"]["library.borrow"]["headers"]["allOf"][1]["properties"]
    assert header["name"]["const"] == "library.borrow" and header["kind"]["const"] == "command"


def test_the_validator_rejects_a_broken_document() -> None:
    document = build_asyncapi(build(ROOT / "example/config.yaml", entrypoints=False).hub)
    broken = copy.deepcopy(document)
    broken["operations"]["example.placeorder.send"]["action"] = "publish"  # AsyncAPI 2's word
    verdict = parse(broken)
    assert not verdict["ok"] and errors(verdict)
    dangling = copy.deepcopy(document)
    del dangling["components"]["schemas"]["BollydogReply"]
    assert not parse(dangling)["ok"]


async def test_the_http_service_serves_the_document_next_to_openapi() -> None:
    composition = build(ROOT / "tests/apps/library.yaml")
    hub = composition.hub
    (http,) = [e for e in composition.entrypoints if isinstance(e, HttpService)]
    async with hub:
        async with httpx.AsyncClient(base_url=http.url) as client:
            served = (await client.get("/asyncapi.json")).json()
            assert (await client.get("/openapi.json")).status_code == 200
    assert served == json.loads(json.dumps(build_asyncapi(hub)))
    assert parse(served)["ok"]


def test_bollydog_docs_prints_both_documents() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "apps")])}
    asyncapi = subprocess.run(
        [sys.executable, "-m", "bollydog", "docs", "asyncapi", "--config", "tests/apps/library.yaml", "--title", "library"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert asyncapi.returncode == 0, asyncapi.stderr
    document = json.loads(asyncapi.stdout)
    assert document["info"]["title"] == "library" and "library.borrow" in document["components"]["messages"]
    openapi = subprocess.run(
        [sys.executable, "-m", "bollydog", "docs", "openapi", "--config", "tests/apps/library.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert openapi.returncode == 0 and "/library/desk/borrow" in json.loads(openapi.stdout)["paths"]
    missing = subprocess.run(
        [sys.executable, "-m", "bollydog", "docs", "asyncapi", "--config", "nowhere.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 2 and "nowhere.yaml" in missing.stderr

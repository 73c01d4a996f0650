"""One JSON encoding (``bollydog.encoding``): a result reads the same over HTTP,
WebSocket, MCP and ``bollydog execute``, values JSON cannot hold included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.kit.conftest import HANDLERS, serving
from tests.mcp.conftest import http_client

ROOT = Path(__file__).resolve().parents[2]
#: What kitdemo.priced answers: Decimal as text, an unknown object as its str(), NaN as null,
#: a set as a list.
EXPECTED = {"price": "1.50", "label": "label x", "ratio": None, "tags": ["a"]}


def _strict(text: str | bytes) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


async def test_one_result_encodes_identically_over_every_entrypoint(tmp_path: Path) -> None:
    async with serving() as served:
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            response = await client.get(served.path("priced"))
            over_http = response.content
        async with connect(served.ws.url) as ws:
            await ws.send(json.dumps({"name": "kitdemo.priced", "id": 1}))
            frames = [_strict(await ws.recv()) for _ in range(2)]
        async with http_client(served.mcp.url, "legacy") as mcp:
            called = await mcp.call_tool("kitdemo_priced", {})
    config = tmp_path / "kit.yaml"
    config.write_text(f"kitdemo:\n  app: !module bollydog.models.service.AppService\n  handlers: [{HANDLERS}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "bollydog.cli.main", "execute", "--config", str(config), "--message", "kitdemo.priced"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    over_cli = done.stdout.strip()
    assert _strict(over_http) == EXPECTED
    assert frames[1]["type"] == "result" and frames[1]["data"] == EXPECTED
    assert called.structured_content == EXPECTED
    assert _strict(called.content[0].text) == EXPECTED  # type: ignore[union-attr]
    assert _strict(over_cli) == EXPECTED
    # Not only the same value: the same text, where the text is the whole answer.
    assert over_http.decode() == called.content[0].text == over_cli  # type: ignore[union-attr]

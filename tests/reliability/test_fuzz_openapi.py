"""The example service's OpenAPI document, fuzzed with schemathesis against a real server:
no 5xx from the framework, every response as the document says.

The suite runs ``BOLLYDOG_FUZZ_CASES`` cases (default 1,000, ~15 s);
``benchmarks/reliability.py fuzz`` runs more (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

from bollydog.bootstrap import build  # noqa: E402
from bollydog.entrypoint.http.app import HttpService  # noqa: E402
from tests.reliability.fuzzing import fuzz  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "example" / "config.yaml"
#: The 5xx that are not the framework's: a client that sets a tiny ``expire_time`` gets the
#: 504 of its own deadline. (The example's own refusals, OutOfStock and UnknownTask, are
#: domain errors: 409 and 404.)
EXPECTED = frozenset({(504, "HandlerTimeoutError")})


async def test_fuzzing_the_openapi_document_finds_no_framework_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_PORT", "0")
    monkeypatch.setenv("BOLLYDOG_WS_SERVICE_PORT", "0")
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_LOG_LEVEL", "warning")
    composition = build(CONFIG)
    http = next(e for e in composition.entrypoints if isinstance(e, HttpService))
    cases = int(os.environ.get("BOLLYDOG_FUZZ_CASES", "1000"))
    async with composition.hub:
        report = await asyncio.to_thread(fuzz, http.url, cases, EXPECTED)
    assert report.cases == cases
    assert report.server_errors == [], report.summary()
    assert report.nonconforming == [], report.summary()
    # the run reached the handlers, with valid and invalid input alike
    assert sum(n for s, n in report.statuses.items() if s < 300) > cases // 10
    assert report.statuses[422] > cases // 10

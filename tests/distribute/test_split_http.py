"""The split deployment end to end: an HTTP front process routes to a consumer process.

The front runs no handler of domain ``calc``: it still serves ``/calc/appservice/add`` (and the
``router_mapping`` alias ``/sum``), sends the command over Redis to the ``bollydog service
--include calc`` process and answers with its result; a remote error answers with the same
status and body as in one process, whether or not the front has its class; a remote generator
handler's partial results stream as SSE. Once the consumer stopped, the front answers 503 at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bollydog.errors import INTERNAL_MESSAGE
from tests.distribute.conftest import consumers_up

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, url: str | None, prefix: str) -> Path:
    """The split config; without ``url``, the same app in one process (no ``distribute``)."""
    distribute = (
        "distribute:\n"
        "  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {url}\n"
        f"  prefix: {prefix}\n"
        "  block_ms: 200\n"
        "  liveness_cache: 0\n"  # every request checks: the front sees the consumer stop at once
    ) if url else ""
    path.write_text(
        "calc:\n"
        "  handlers: [tests.distribute.calc_handlers]\n"
        "http:\n"
        "  app: !module bollydog.entrypoint.http.app.HttpService\n"
        "  port: 0\n"
        "  router_mapping:\n"
        "    calc.add:\n"
        "      aliases: [/sum]\n"
        + distribute
    )
    return path


async def _failures(composition) -> list[tuple[int, dict]]:
    """Status and body of the domain errors, through a started composition's HTTP entrypoint."""
    (http,) = composition.entrypoints
    answers = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=15) as client:
        for text in ("sold", "gone", "custom"):
            answer = await client.post("/calc/appservice/fail", json={"text": text})
            answers.append((answer.status_code, answer.json()))
    return answers


async def test_http_front_serves_commands_handled_in_another_process(redis_url, prefix, tmp_path):
    from bollydog.bootstrap import build
    from tests.distribute.calc_handlers import Add

    config = write_config(tmp_path / "config.yaml", redis_url, prefix)
    log = tmp_path / "consumer.log"
    consumer = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "calc"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "BOLLYDOG_LOG_LEVEL": "WARNING"},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        await consumers_up(redis_url, prefix, "calc", alive=lambda: consumer.poll() is None)
        composition = build(config, exclude=["calc"])
        hub = composition.hub
        assert Add not in hub.registry.commands  # nothing of calc runs here
        (http,) = composition.entrypoints
        async with hub:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=15) as client:
                answer = await client.get("/calc/appservice/add", params={"a": 2, "b": 3})
                assert answer.status_code == 200, answer.text
                assert answer.json() == 5
                assert (await client.get("/sum", params={"a": 20, "b": 1})).json() == 21
                invalid = await client.get("/calc/appservice/add", params={"a": "x", "b": 1})
                assert invalid.status_code == 422  # validated at the front, never sent
                failed = await client.post("/calc/appservice/fail", json={"text": "far away"})
                assert failed.status_code == 500
                assert failed.json()["message"] == INTERNAL_MESSAGE  # its text: in the worker's log
                spec = (await client.get("/openapi.json")).json()
                assert "/calc/appservice/add" in spec["paths"]
                sse = {"accept": "text/event-stream"}
                streamed = await client.get("/calc/appservice/count", params={"n": 2}, headers=sse)
                assert streamed.text == (
                    'event: partial\ndata: {"i":0}\n\nevent: partial\ndata: {"i":1}\n\n'
                    'event: partial\ndata: {"done":2}\n\nevent: result\ndata: {"done":2}\n\n'
                )
                split = await _failures(composition)

                consumer.send_signal(signal.SIGTERM)
                assert consumer.wait(timeout=20) == 0, log.read_text()
                refused = await client.get("/calc/appservice/add", params={"a": 2, "b": 3})
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "NoConsumerError" and "retry-after" in refused.headers
        embedded_composition = build(write_config(tmp_path / "embedded.yaml", None, prefix))
        async with embedded_composition.hub:
            embedded = await _failures(embedded_composition)
        assert split == embedded
        assert split == [
            (409, {"error": "Sold", "message": "the last widget is sold", "item": "widget"}),
            (410, {"error": "Gone", "message": "that widget is gone for good", "item": "widget"}),
            (500, {"error": "OutOfStock", "message": INTERNAL_MESSAGE}),  # unmapped: its text is logged
        ]
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            assert consumer.wait(timeout=20) == 0, log.read_text()


async def test_http_front_answers_503_with_retry_after_and_one_log_line_when_redis_is_down(prefix, tmp_path, caplog):
    """Redis unreachable: each request answers 503 with Retry-After, and is logged once, as a
    warning without a traceback; the transport's reconnecting loops log the outage once."""
    import logging

    from bollydog.bootstrap import build

    config = write_config(tmp_path / "down.yaml", "redis://127.0.0.1:1/0", prefix)
    config.write_text(config.read_text() + "  op_timeout: 1.0\n  reconnect_backoff: 0.01\n  reconnect_backoff_max: 0.02\n")
    composition = build(config, exclude=["calc"])
    (http,) = composition.entrypoints
    caplog.set_level(logging.DEBUG)
    async with composition.hub:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=15) as client:
            caplog.clear()
            answers = [await client.post("/calc/appservice/add", json={"a": 1, "b": 2}) for _ in range(5)]
            import asyncio

            await asyncio.sleep(0.3)  # the reply reader retries many times meanwhile
    assert [a.status_code for a in answers] == [503] * 5
    assert all("retry-after" in a.headers for a in answers)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]
    failed = [r for r in records if "TransportError" in r.getMessage()]
    assert len(failed) == 5, [r.getMessage() for r in records]
    outage = [r for r in records if "reply reader" in r.getMessage()]
    assert len(outage) <= 1, [r.getMessage() for r in outage]

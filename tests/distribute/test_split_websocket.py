"""A WebSocket front of a split deployment: its subscribers see what the worker process does.

The worker is a ``bollydog service --include wsdemo`` subprocess; the front, here, runs the
same config with ``wsdemo`` excluded and serves the WebSocket. A subscriber of ``wsdemo.*`` on
the front sees the command the worker ran and the event it published, as in one process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from tests.distribute.conftest import consumers_up

ROOT = Path(__file__).resolve().parents[2]


async def _listening(redis_url: str, channel: str, count: int) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(200):
            ((_, listeners),) = await client.pubsub_numsub(channel)
            if listeners >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"nobody subscribed to {channel}")
    finally:
        await client.aclose()


async def test_websocket_front_subscribers_see_the_worker_process(redis_url, prefix, tmp_path):
    from bollydog.bootstrap import build

    config = tmp_path / "config.yaml"
    config.write_text(
        "wsdemo:\n  handlers: [tests.websocket.handlers]\n"
        "websocket:\n  app: !module bollydog.entrypoint.websocket.app.SocketService\n  port: 0\n"
        "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {redis_url}\n  prefix: {prefix}\n  block_ms: 200\n  notice_interval: 0.1\n"
    )
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "wsdemo"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "BOLLYDOG_LOG_LEVEL": "WARNING"},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        await consumers_up(redis_url, prefix, "wsdemo", alive=lambda: worker.poll() is None)
        composition = build(config, exclude=["wsdemo"])
        (service,) = composition.entrypoints
        async with composition.hub, connect(service.url) as watcher, connect(service.url) as caller:
            await watcher.send(json.dumps({"type": "subscribe", "id": "s", "topics": ["wsdemo.*"]}))
            assert json.loads(await watcher.recv())["type"] == "subscribed"
            await _listening(redis_url, f"{prefix}:notices", 1)
            await asyncio.sleep(0.5)  # the worker's next check sees the front listening
            await caller.send(json.dumps({"id": 1, "name": "ring", "value": 3}))
            notes = {}
            for _ in range(2):
                note = json.loads(await asyncio.wait_for(watcher.recv(), 10))
                notes[note["topic"]] = note
            assert set(notes) == {"wsdemo.ring", "wsdemo.pinged"}, notes
            assert notes["wsdemo.pinged"]["data"]["value"] == 3 and notes["wsdemo.pinged"]["result"] == [3]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0, log.read_text()

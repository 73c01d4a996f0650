"""WaitFor across processes: the payment comes from a process running domain "pay".

Over the in-memory broker (two hubs in this process, the Redis transport's behaviour), and for
real: a ``bollydog service`` subprocess running "pay" over Redis (``BOLLYDOG_TEST_REDIS_URL``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bollydog.bootstrap import build
from bollydog.service.app import HubService
from bollydog.testing import MemoryBroker
from tests.orchestration import shop_handlers
from tests.orchestration.pay_handlers import PaymentReceived
from tests.orchestration.shop_handlers import Checkout

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = {"shop": ["tests.orchestration.shop_handlers"], "pay": ["tests.orchestration.pay_handlers"]}


@asynccontextmanager
async def process(hosts: list[str], transport: dict[str, Any]) -> AsyncIterator[HubService]:
    config: dict[str, Any] = {d: {"handlers": m} for d, m in DOMAINS.items()}
    config["distribute"] = transport
    hub = build(config, exclude=[d for d in DOMAINS if d not in hosts], entrypoints=False).hub
    async with hub:
        yield hub


async def test_wait_for_an_event_published_by_another_process_memory_broker() -> None:
    broker = MemoryBroker()
    section = {"app": "bollydog.testing.MemoryTransport", "broker": broker}
    async with process(["pay"], section) as pay, process(["shop"], section) as shop:
        assert "pay" not in shop.apps and shop.transport.serves(PaymentReceived) is False
        assert pay.transport.serves(PaymentReceived)  # shop handles it: it goes there
        command = Checkout(order_id="o-1", amount=12.5)
        result = await shop.execute(command)
        assert result["receipt"] == "receipt-o-1" and result["paid"] == 12.5
        assert result["payment_trace"] == command.trace_id  # the trace crossed both ways


async def test_wait_for_across_two_os_processes_over_redis(redis_url: str, prefix: str, tmp_path: Path) -> None:
    from tests.distribute.conftest import consumers_up

    config = tmp_path / "config.yaml"
    config.write_text(
        "shop:\n  handlers: [tests.orchestration.shop_handlers]\n"
        "pay:\n  handlers: [tests.orchestration.pay_handlers]\n"
        "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {redis_url}\n  prefix: {prefix}\n  block_ms: 200\n"
    )
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "pay.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "pay"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        await consumers_up(redis_url, prefix, "pay", alive=lambda: worker.poll() is None)
        hub = build(config, exclude=["pay"], entrypoints=False).hub
        async with hub:
            assert "pay" not in hub.apps  # Charge runs in the subprocess only
            shop_handlers.seen.clear()
            results = [await hub.execute(Checkout(order_id=f"r-{i}", amount=i)) for i in range(5)]
            assert [r["paid"] for r in results] == [0, 1, 2, 3, 4]
            assert shop_handlers.seen == [f"r-{i}" for i in range(5)]  # delivered to this process
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, log.read_text()

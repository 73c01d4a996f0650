"""A durable run taken over by another process through the Redis consumer group.

The ``saga`` domain runs in ``bollydog service`` processes sharing one database. The first
consumer is SIGKILLed in the middle of a run; its entry is reclaimed by a second consumer after
``claim_idle``, whose handler finds the run in the database, replays the recorded steps and
finishes it; the caller gets its answer, and every step's effect is in the database once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from bollydog.bootstrap import build
from tests.distribute.conftest import consumers_up
from tests.orchestration.saga_handlers import Fulfil
from tests.orchestration.test_durable import effects, runs

ROOT = Path(__file__).resolve().parents[2]


def consumer(config: Path, log: Path, crash: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), "SAGA_CRASH": crash}
    return subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "saga"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def test_a_run_whose_consumer_died_is_finished_by_another(redis_url: str, prefix: str, tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        "saga:\n  handlers: [tests.orchestration.saga_handlers]\n"
        "  unit_of_work:\n    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork\n"
        f"    url: sqlite+aiosqlite:///{database}\n"
        "    metadata: !module tests.orchestration.saga_handlers.Base\n    durable: true\n"
        "  protocol:\n    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyProtocol\n"
        "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {redis_url}\n  prefix: {prefix}\n  block_ms: 200\n  claim_idle: 1.0\n"
    )
    first = consumer(config, tmp_path / "first.log", crash="before:4")  # inside step 4, uncommitted
    second = None
    try:
        await consumers_up(redis_url, prefix, "saga", alive=lambda: first.poll() is None)
        hub = build(config, exclude=["saga"], entrypoints=False).hub
        async with hub:
            answer = asyncio.ensure_future(hub.execute(Fulfil(key="x", expire_time=30)))
            await asyncio.get_running_loop().run_in_executor(None, first.wait, 20)
            assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
            assert effects(database, "x") == [("do", 1), ("do", 2), ("do", 3)]
            second = consumer(config, tmp_path / "second.log")
            assert await asyncio.wait_for(answer, 30) == {"key": "x", "total": 150}
        assert runs(database)[0][1] == "done"
        assert effects(database, "x") == [("do", s) for s in range(1, 6)]  # each exactly once
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert second is not None and second.returncode == 0, (tmp_path / "second.log").read_text()

"""A split deployment for real: a front hub here, two `bollydog service` consumer processes.

2,000 commands go through Redis; one consumer is SIGKILLed mid-run. Its pending entries are
reclaimed by the survivor after ``claim_idle`` (1 s here), so every command is answered.

Why the caller may retry: an entry the killed consumer had read is invisible to the others
until it has been idle for ``claim_idle``; a command whose reply takes longer than its
``expire_time`` raises HandlerTimeoutError at the caller, which then sends the same message
again (same id). The caller's view stays exactly-once: one answer per command, because an
attempt that timed out never answers, and the late reply of an earlier attempt answers the
retry (replies are matched by message id). Handlers may run twice (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bollydog.errors import HandlerTimeoutError
from tests.distribute.calc_handlers import Work

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = 2000


def write_config(path: Path, url: str, prefix: str) -> Path:
    path.write_text(
        "calc:\n"
        "  handlers: [tests.distribute.calc_handlers]\n"
        "distribute:\n"
        "  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {url}\n"
        f"  prefix: {prefix}\n"
        "  claim_idle: 1.0\n"
        "  block_ms: 500\n"
        "  concurrency: 64\n"
    )
    return path


def start_consumer(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env.pop("BOLLYDOG_HANDLERS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config", str(config), "--include", "calc"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def test_two_consumer_processes_one_killed_mid_run(redis_url, prefix, raw, tmp_path):
    from bollydog.bootstrap import build

    config = write_config(tmp_path / "config.yaml", redis_url, prefix)
    consumers = [start_consumer(config, tmp_path / f"consumer{i}.log") for i in range(2)]
    try:
        stream = f"{prefix}:stream:calc:normal"
        deadline = time.monotonic() + 20
        while True:  # a consumer shows up in the group with its first read
            try:
                if len(await raw.xinfo_consumers(stream, "calc")) >= 2:
                    break
            except Exception:  # the group does not exist yet
                pass
            for proc in consumers:
                assert proc.poll() is None, (tmp_path / "consumer0.log").read_text()
            assert time.monotonic() < deadline, "consumer processes did not start"
            await asyncio.sleep(0.05)

        hub = build(config, exclude=["calc"], entrypoints=False).hub
        answers: dict[int, int] = {}
        retries = 0
        killed_at = None
        limit = asyncio.Semaphore(200)
        started = time.monotonic()

        async def call(n: int) -> None:
            nonlocal retries, killed_at
            message = Work(n=n, expire_time=3)
            async with limit:
                for attempt in range(5):
                    try:
                        result = await hub.execute(message)
                        break
                    except HandlerTimeoutError:
                        retries += 1
                else:
                    raise AssertionError(f"command {n} never answered")
            assert n not in answers, f"command {n} answered twice"
            answers[n] = result
            if len(answers) == COMMANDS // 3 and killed_at is None:
                killed_at = time.monotonic() - started
                consumers[0].send_signal(signal.SIGKILL)

        async with hub:
            await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(COMMANDS))), timeout=60)
        elapsed = time.monotonic() - started
        print(f"\n{COMMANDS} commands in {elapsed:.2f}s; consumer killed at {killed_at:.2f}s; {retries} retries")

        assert consumers[0].wait(5) == -signal.SIGKILL
        assert len(answers) == COMMANDS
        assert all(answers[n] == 2 * n for n in range(COMMANDS))
        assert elapsed < 60
        # Nothing is left pending: the dead consumer's entries were taken over and acknowledged.
        for _ in range(100):
            if (await raw.xpending(stream, "calc"))["pending"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await raw.xpending(stream, "calc"))["pending"] == 0
        # The survivor still shuts down cleanly on SIGTERM.
        consumers[1].send_signal(signal.SIGTERM)
        assert consumers[1].wait(15) == 0, (tmp_path / "consumer1.log").read_text()
    finally:
        for proc in consumers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

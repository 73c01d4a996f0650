"""One-shot CLI runs are clients of the transport: they never consume another process's work."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bollydog.bootstrap import build
from bollydog.cli.main import cli
from bollydog.errors import NoConsumerError
from tests.cli_surface.lots_handlers import Ping
from tests.distribute.conftest import redis_url_or_skip


def split_config(folder: Path, url: str, prefix: str) -> Path:
    config = folder / "split.yaml"
    config.write_text(
        "lots:\n  handlers: [tests.cli_surface.lots_handlers]\n"
        "fees:\n  handlers: [tests.cli_surface.fees_handlers]\n"
        "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {url}\n  prefix: {prefix}\n  op_timeout: 1\n"
    )
    return config


@pytest.fixture
def split(tmp_path: Path) -> Iterator[Path]:
    import redis

    url = redis_url_or_skip()
    prefix = f"bdtest:{secrets.token_hex(4)}"
    yield split_config(tmp_path, url, prefix)
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


async def test_execute_does_not_serve_the_front_while_it_runs(split: Path) -> None:
    # execute runs lots.slow itself (every domain is local to it) for a while...
    running = asyncio.ensure_future(asyncio.to_thread(
        invoke, "execute", "--config", str(split), "--message", "lots.slow", "--seconds=1.5"
    ))
    await asyncio.sleep(0.8)
    # ...and a front that runs neither domain finds no consumer of lots meanwhile.
    front = build(split, exclude=["lots", "fees"], entrypoints=False).hub
    async with front:
        with pytest.raises(NoConsumerError):
            await front.execute(Ping())
    result = await running
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == os.getpid()


async def test_execute_sends_a_domain_run_elsewhere_to_its_service(split: Path) -> None:
    args = ["execute", "--config", str(split), "--exclude", "lots", "--message", "lots.ping"]
    alone = await asyncio.to_thread(invoke, *args)
    assert alone.exit_code == NoConsumerError.exit_code, alone.output
    assert "lots" in alone.output
    worker = build(split, include=["lots"], entrypoints=False).hub
    async with worker:
        served = await asyncio.to_thread(invoke, *args)
    assert served.exit_code == 0, served.output
    assert json.loads(served.stdout) == os.getpid()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_execute_with_redis_down(tmp_path: Path) -> None:
    config = split_config(tmp_path, f"redis://127.0.0.1:{_closed_port()}/0", "bdtest:down")
    remote = invoke("execute", "--config", str(config), "--exclude", "lots", "--message", "lots.ping")
    assert remote.exit_code not in (0, None), remote.output
    assert "cannot reach Redis" in remote.output and "lots.ping" in remote.output
    local = invoke("execute", "--config", str(config), "--message", "fees.quote", "--hours=2")
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout) == 4


async def test_a_client_only_composition_consumes_nothing() -> None:
    """What execute, shell and sagas build (consumers=False), on the in-memory transport."""
    from bollydog.testing import MemoryBroker

    broker = MemoryBroker()
    config = {
        "lots": {"handlers": ["tests.cli_surface.lots_handlers"]},
        "distribute": {"app": "bollydog.testing.MemoryTransport", "broker": broker},
    }
    client = build(config, entrypoints=False, consumers=False).hub
    front = build(config, exclude=["lots"], entrypoints=False).hub
    async with client, front:
        assert "lots" in client.apps and client.transport.consumers == ()
        assert await client.execute(Ping()) == os.getpid()  # its own domains run locally
        with pytest.raises(NoConsumerError):
            await front.execute(Ping())
        async with build(config, include=["lots"], entrypoints=False).hub as worker:
            assert worker.transport.consumers
            assert await front.execute(Ping()) == os.getpid()

"""Health probes: the HTTP service's /livez and /readyz, the readiness rules, the probe server
of a worker-only `bollydog service` through start, running and drain, and start-up checks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.kit.health import Readiness, probe_routes, readiness
from bollydog.errors import ConfigError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.ops.conftest import HANDLERS, free_port
from tests.ops.ops_handlers import GATES, Hold

ROOT = Path(__file__).resolve().parents[2]


def shop() -> AppService:
    return AppService(domain="shop", handlers=[HANDLERS])


def probes_client(hub: HubService) -> httpx.AsyncClient:
    """The probe routes of ``hub`` in process (what every server of them serves)."""
    app = Starlette(routes=probe_routes(hub))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probes")


async def test_http_service_answers_livez_and_readyz_and_readyz_is_503_while_draining() -> None:
    hub = HubService(apps=[shop()], shutdown_grace=5)
    http = hub.add_entrypoint(HttpService(port=0))
    assert (await readiness(hub)).reason == "starting: the hub has not started"
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=http.url, timeout=5) as client:
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            assert ready.headers["cache-control"] == "no-store"
            assert (await client.get("/livez")).json() == {"status": "alive"}
            nometrics = await client.get("/metrics")
            assert nometrics.status_code == 404 and "metrics_exporter: prometheus" in nometrics.json()["message"]
        GATES["drain"] = asyncio.Event()
        held = await hub.put_message(Hold(key="drain"))
        stopping = asyncio.create_task(hub.stop())
        await asyncio.sleep(0.05)
        async with probes_client(hub) as probes:
            draining = await probes.get("/readyz")
            assert draining.status_code == 503
            assert draining.json() == {"status": "unavailable", "reason": "draining: the hub is stopping"}
            assert (await probes.get("/livez")).status_code == 200  # draining is no reason to restart
        GATES["drain"].set()
        await stopping
        assert await held.state == "released"  # the drain let it finish
    finally:
        GATES.pop("drain", None)
        await hub.stop()


async def test_readyz_names_an_unreachable_transport_broker() -> None:
    from bollydog.transport.redis import RedisTransport

    hub = HubService(apps=[shop()], transport=RedisTransport("redis://127.0.0.1:1/0", op_timeout=0.5))
    async with hub:
        async with probes_client(hub) as probes:
            answer = await probes.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["reason"].startswith("cannot reach Redis at redis://127.0.0.1:1/0: ")


async def test_readyz_pings_a_reachable_redis() -> None:
    url = os.environ.get("BOLLYDOG_TEST_REDIS_URL")
    if not url:
        pytest.skip("BOLLYDOG_TEST_REDIS_URL is not set (source /tmp/env.sh or .ci/start-redis.sh)")
    from bollydog.transport.redis import RedisTransport

    hub = HubService(apps=[shop()], transport=RedisTransport(url, prefix=f"ops-{os.getpid()}"))
    async with hub:
        assert await readiness(hub) == Readiness(True)
        assert await hub.transport.probe() is None


def test_a_probe_path_taken_by_an_alias_is_a_config_error() -> None:
    hub = HubService(apps=[shop()])
    http = hub.add_entrypoint(HttpService(port=0, router_mapping={"shop.add": {"aliases": ["/readyz"]}}))
    with pytest.raises(ConfigError, match=r"/readyz is a probe path.*http.probes: false"):
        http.build_app()
    hub2 = HubService(apps=[shop()])
    quiet = hub2.add_entrypoint(HttpService(port=0, probes=False, router_mapping={"shop.add": {"aliases": ["/readyz"]}}))
    assert "/readyz" in {r.path for r in quiet.build_app().routes}  # the alias, not a probe


def bollydog(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    executable = Path(sys.executable).with_name("bollydog")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "bollydog.cli.main"]
    return subprocess.Popen(
        [*command, *args], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def get(url: str) -> tuple[int, dict[str, str]] | None:
    try:
        answer = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return answer.status_code, answer.json()


def test_probe_server_of_a_worker_process_through_start_running_and_drain(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"shop:\n  app: !module tests.ops.ops_handlers.SlowStartService\n  handlers: [{HANDLERS}]\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = bollydog(
        "service", "--config", str(config),
        env={"BOLLYDOG_PROBE_PORT": str(port), "OPS_START_DELAY": "1.5", "OPS_HOLD": "never",
             "BOLLYDOG_SHUTDOWN_GRACE": "2", "BOLLYDOG_COMPENSATION_GRACE": "0"},
    )
    try:
        seen: list[tuple[int, dict[str, str]]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # starting: 503 with the reason, then ready
            answer = get(f"{base}/readyz")
            if answer is not None:
                seen.append(answer)
                if answer[0] == 200:
                    break
            time.sleep(0.05)
        assert seen and seen[-1] == (200, {"status": "ready"}), seen
        starting = [a for a in seen if a[0] == 503]
        assert starting, "the probe server answered before the start was over"
        assert all(a[1]["reason"].startswith("starting: ") for a in starting), starting
        assert get(f"{base}/livez") == (200, {"status": "alive"})

        process.terminate()  # the Hold command keeps the drain busy for the 2 s grace
        draining = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and draining is None:
            answer = get(f"{base}/readyz")
            if answer is not None and answer[0] == 503:
                draining = answer
            time.sleep(0.02)
        assert draining is not None and draining[1]["reason"].startswith("draining: "), draining
        assert get(f"{base}/livez") == (200, {"status": "alive"})
        assert process.wait(timeout=20) == 0
        assert get(f"{base}/livez") is None  # the probe server stopped with the process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_service_exits_non_zero_with_one_line_when_redis_is_down(tmp_path: Path) -> None:
    config = tmp_path / "redis-down.yaml"
    config.write_text(
        "redis:\n  app: !module bollydog.transport.redis.RedisTransport\n  url: redis://127.0.0.1:1/0\n"
        "  op_timeout: 1.0\n"
        f"shop:\n  handlers: [{HANDLERS}]\n"
    )
    process = bollydog("service", "--config", str(config), env={})
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: ConfigError: cannot reach Redis at redis://127.0.0.1:1/0: "), stderr
    assert lines[-1].endswith("start it, or fix the transport's url in the config")
    assert "Traceback" not in stderr and "hub started" not in stderr


async def test_a_busy_probe_port_or_a_bad_variable_is_a_config_error_naming_it(monkeypatch) -> None:
    import socket

    from bollydog.cli.runner import probe_settings, start_probes

    monkeypatch.setenv("BOLLYDOG_PROBE_PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"probes: invalid option \(config or BOLLYDOG_PROBE_\*\): port"):
        probe_settings()
    monkeypatch.delenv("BOLLYDOG_PROBE_PORT")
    assert probe_settings() is None  # off unless a port is set
    hub = HubService(apps=[shop()])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("BOLLYDOG_PROBE_PORT", str(port))
        settings = probe_settings()
        assert settings is not None and settings.port == port
        with pytest.raises(ConfigError, match=rf"probes: cannot listen on 127.0.0.1:{port}: .*BOLLYDOG_PROBE_PORT"):
            await start_probes(hub, settings, port)


def test_service_exits_non_zero_with_one_line_when_its_database_is_down(tmp_path: Path) -> None:
    config = tmp_path / "db-down.yaml"
    config.write_text(
        f"shop:\n  handlers: [{HANDLERS}]\n"
        "  unit_of_work:\n    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork\n"
        "    url: postgresql+asyncpg://app:secret@127.0.0.1:1/app\n"
        "  protocol:\n    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyProtocol\n"
    )
    process = bollydog("service", "--config", str(config), env={})
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ConfigError: cannot connect to database postgresql+asyncpg://app:***@127.0.0.1:1/app"), stderr
    assert "secret" not in stderr and "Traceback" not in stderr


async def test_a_crashed_hub_fails_livez_with_the_crash_reason() -> None:
    hub = HubService(apps=[shop()])
    async with hub:
        async with probes_client(hub) as probes:
            assert (await probes.get("/livez")).status_code == 200
            await hub.crash(RuntimeError("disk on fire"))
            answer = await probes.get("/livez")
            ready = await probes.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "reason": "the hub crashed: RuntimeError: disk on fire"}
    assert ready.status_code == 503 and ready.json()["reason"] == answer.json()["reason"]

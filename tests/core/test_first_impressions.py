"""What a new user meets first on the command line, each answer telling them what to do."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.entrypoint.http.app import HttpService

from tests.core.test_cli import ROOT, bollydog


def test_forgetting_config_says_so():
    done = bollydog("execute", "--message", "slowapp.nap", env={"BOLLYDOG_HANDLERS": ""})
    assert done.returncode == 2
    assert "unknown message 'slowapp.nap'" in done.stderr and "pass --config" in done.stderr


def test_a_config_key_is_not_a_module_and_the_error_lists_the_names():
    done = bollydog("execute", "--config", "example/config.yaml", "--message", "todo.nosuch")
    assert done.returncode == 2
    assert "known:" in done.stderr and "todo.addtask" in done.stderr
    assert "No module named" not in done.stderr


def test_a_handler_module_failing_on_import_names_file_and_line(tmp_path):
    (tmp_path / "brokenmod.py").write_text("x = 1\nraise ValueError('boom')\n")
    done = bollydog("execute", "--message", "x.y", cwd=tmp_path, env={"BOLLYDOG_HANDLERS": "brokenmod"})
    assert done.returncode == 2
    assert f"{tmp_path / 'brokenmod.py'}:2" in done.stderr and "ValueError: boom" in done.stderr


def test_the_readme_showcase_places_an_order():
    done = bollydog(
        "execute", "--config", "example/config.yaml", "--message", "example.placeorder",
        "--customer=ann", '--lines=[{"sku": "apple", "quantity": 2}]',
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "placed"


def test_example_paths_are_relative_to_the_config_file(tmp_path):
    shutil.copytree(ROOT / "example", tmp_path / "example", ignore=shutil.ignore_patterns("*.db", "__pycache__"))
    # No BOLLYDOG_EXAMPLE_DATABASE_URL: the example's own default path is under test.
    clean = {k: v for k, v in os.environ.items() if k != "BOLLYDOG_EXAMPLE_DATABASE_URL"}

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bollydog.cli.main", *args], cwd=cwd, env=clean,
                              capture_output=True, text=True, timeout=60)

    added = run("execute", "--config=example/config.yaml", "--message=todo.addtask", "--title=milk", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    listed = run("execute", "--config=./config.yaml", "--message=todo.listtasks", cwd=tmp_path / "example")
    assert listed.returncode == 0, listed.stderr
    assert [t["title"] for t in json.loads(listed.stdout)] == ["milk"]  # one database, the config's
    assert (tmp_path / "example" / "example.db").exists() and not (tmp_path / "example.db").exists()


def test_version_and_python_dash_m():
    import bollydog

    assert bollydog.__version__ and bollydog.__version__[0].isdigit()
    done = subprocess.run([sys.executable, "-m", "bollydog", "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and bollydog.__version__ in done.stdout


def test_ls_shows_entrypoints_and_routes():
    done = bollydog("ls", "--config", "example/config.yaml")
    assert done.returncode == 0, done.stderr
    assert "ENTRYPOINTS" in done.stdout
    assert "/example/exampleservice/taskcount /count" in done.stdout
    assert "ws://127.0.0.1:" in done.stdout
    listed = json.loads(bollydog("ls", "--config", "example/config.yaml", "--json").stdout)
    http = next(e for e in listed["entrypoints"] if e["entrypoint"] == "HttpService")
    assert {"message": "todo.addtask", "methods": ["GET", "POST"], "paths": ["/todo/todoservice/addtask"]} in http["routes"]


def test_execute_prints_before_telemetry_flushes_to_an_absent_collector():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SERVICE_NAME": "cli",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed}"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "execute", "--config=example/config.yaml",
         "--message=example.handler.TaskCount"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline()
        assert json.loads(line) == 0
        assert time.monotonic() - started < 10  # the export's retries take 15 s and more
    finally:
        process.kill()
        process.wait()


async def test_a_json_body_sent_as_a_form_gets_a_hint():
    hub = HubService(apps=[AppService.create_from(domain="who", handlers=["tests.core.session_handlers"])])
    http = hub.add_entrypoint(HttpService(port=0))
    async with hub, httpx.AsyncClient(base_url=http.url) as client:
        # What `curl -d '{"key": "k"}'` sends.
        reply = await client.post("/who/appservice/remember", content=b'{"key": "k"}',
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 415
    assert "looks like JSON" in reply.json()["message"] and "application/json" in reply.json()["message"]


def test_an_invalid_environment_setting_is_named_not_a_traceback():
    done = bollydog("ls", env={"BOLLYDOG_QUEUE_MAX_SIZE": "lots"})
    assert done.returncode == 2
    assert "BOLLYDOG_QUEUE_MAX_SIZE='lots'" in done.stderr and "Traceback" not in done.stderr
    done = bollydog("ls", env={"BOLLYDOG_EVENT_LOOP": "tokio"})
    assert done.returncode == 2 and "BOLLYDOG_EVENT_LOOP='tokio'" in done.stderr


def test_the_cli_runs_on_uvloop_when_installed_unless_told_otherwise(monkeypatch):
    import pytest

    from bollydog.cli.exits import loop_factory
    from bollydog.settings import reload_settings

    uvloop = pytest.importorskip("uvloop")
    try:
        assert loop_factory() is uvloop.new_event_loop
        monkeypatch.setenv("BOLLYDOG_EVENT_LOOP", "asyncio")
        reload_settings()
        assert loop_factory() is None
    finally:
        monkeypatch.delenv("BOLLYDOG_EVENT_LOOP", raising=False)
        reload_settings()

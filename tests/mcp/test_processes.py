"""Real processes: ``bollydog mcp`` over stdio, ``bollydog service`` with an mcp section over HTTP."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.mcp.conftest import APPS, LIBRARY_CONFIG, ROOT, free_port, http_client

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(APPS)]), "BOLLYDOG_LOG_LEVEL": "INFO"}
CLI = [sys.executable, "-m", "bollydog.cli.main"]


async def test_bollydog_mcp_serves_stdio_to_the_sdk_client(tmp_path: Path) -> None:
    errors = (tmp_path / "stderr.log").open("w")
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "bollydog.cli.main", "mcp", "--config", str(LIBRARY_CONFIG)],
        cwd=str(ROOT), env=ENV,
    )
    seen: list[Any] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(json.loads(message or "null"))

    try:
        async with Client(server, mode="legacy") as client:  # Claude Desktop and others: stdio, 2025 protocol

            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"library_borrow", "library_listbooks"} <= set(tools)
            # GET only in the config's http section: read-only, though HTTP is not served here.
            assert tools["library_listbooks"].annotations.read_only_hint is True
            assert tools["library_borrow"].description == "Lend a book to a reader."
            result = await client.call_tool("library_borrow", {"title": "dune"}, progress_callback=progress)
    finally:
        errors.close()
    who = getpass.getuser()
    assert result.structured_content == {"result": {"status": "lent", "title": "dune", "by": who}}
    assert seen == [{"status": "checking", "title": "dune"}, {"status": "lent", "title": "dune", "by": who}]


def _stdio_process(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "mcp", "--config", str(config)], cwd=ROOT, env=ENV,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write((json.dumps(message) + "\n").encode())
    process.stdin.flush()


def _receive(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the server closed stdout"
    return dict(json.loads(line))  # every line on stdout is a JSON-RPC message


@pytest.mark.parametrize("ending", ["eof", "sigterm"])
def test_stdout_carries_only_the_protocol_and_the_process_ends_cleanly(tmp_path: Path, ending: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("noisy:\n  handlers: [tests.mcp.noisy_handlers]\n")
    process = _stdio_process(config)
    try:
        _send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"},
        }})
        assert _receive(process)["result"]["serverInfo"]["name"] == "bollydog"
        _send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(process, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "noisy_shout", "arguments": {"text": "psst"}}})
        answer = _receive(process)
        assert answer["id"] == 2 and answer["result"]["structuredContent"] == {"result": "PSST"}
        assert process.stdin is not None
        if ending == "eof":
            process.stdin.close()  # the client leaves: the service stops
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read() == b""  # nothing after the protocol, not even the print
        logs = process.stderr.read().decode()
        assert "psst printed by a handler" in logs  # the handler's print went to stderr
        assert "MCP service on stdio (4 tools)" in logs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_bollydog_service_serves_an_mcp_section_and_an_http_mount(tmp_path: Path) -> None:
    mcp_port, http_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "library:\n"
        "  handlers: [libraryapp.handlers]\n"
        "http:\n"
        "  app: !module bollydog.entrypoint.http.app.HttpService\n"
        f"  port: {http_port}\n"
        "  mcp_path: /mcp\n"
        "  include: ['library.*']\n"
        "mcp:\n"
        "  app: !module bollydog.entrypoint.mcp.app.McpService\n"
        "  exclude: ['bollydog.*']\n"
    )
    env = {**ENV, "BOLLYDOG_MCP_SERVICE_PORT": str(mcp_port), "BOLLYDOG_MCP_SERVICE_HOST": "127.0.0.1"}
    log = (tmp_path / "service.log").open("w")
    process = subprocess.Popen(
        [*CLI, "service", "--config", str(config)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_port(process, mcp_port, tmp_path / "service.log")
        for url in (f"http://127.0.0.1:{mcp_port}/mcp", f"http://127.0.0.1:{http_port}/mcp"):
            async with http_client(url, "legacy") as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert names == {"library_borrow", "library_listbooks"}
                result = await client.call_tool("library_listbooks", {})
                assert result.structured_content == {"result": ["dune", "emma", "ulysses"]}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, (tmp_path / "service.log").read_text()
    finally:
        log.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text()) from None
            time.sleep(0.1)


def test_without_the_mcp_package_the_error_says_what_to_install() -> None:
    blocked = "import sys; sys.modules['mcp'] = None; "
    imported = subprocess.run(
        [sys.executable, "-c", blocked + "import bollydog.entrypoint.mcp"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert imported.returncode == 1
    assert "MissingDependencyError: the MCP entrypoint needs the 'mcp' package" in imported.stderr
    assert "pip install 'bollydog[mcp]'" in imported.stderr
    command = subprocess.run(
        [sys.executable, "-c", blocked + "from bollydog.cli.main import main; sys.argv[1:] = "
         f"['mcp', '--config', {str(LIBRARY_CONFIG)!r}]; main()"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert command.returncode != 0
    assert "pip install 'bollydog[mcp]'" in command.stderr

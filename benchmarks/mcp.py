"""MCP benchmark: sequential tool calls over streamable HTTP, bollydog vs a bare SDK server.

Both servers answer one tool, ``add`` (``a + b``, structured result ``{"result": <int>}``, the
same output schema): bollydog's McpService in front of a hub, and the SDK's low-level
``Server`` with a hand-written handler, served by ``streamable_http_app()``. Each runs in its
own process under uvicorn with the same event loop and HTTP parser, pinned to the same CPU;
the client is the SDK's ``Client`` in this process, pinned to the other CPU, one call at a
time. Rounds alternate between the servers (and their order flips each round), so both see the
same machine noise. Run from the repository root::

    python benchmarks/mcp.py [--rounds 5] [--calls 300] [--modes legacy,auto] [--write-docs]

It prints, per protocol era and server, calls/s (min / median / max over the rounds), p50 and
p99 latency over every call, and bollydog's median rate relative to the bare server's.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named mcp.py: keep its folder off sys.path so that the SDK's ``mcp`` package is
# the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: bollydog from this checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402
from bollydog.models.base import Command  # noqa: E402

INTRO = """
Sequential `add` tool calls over streamable HTTP with the SDK's own client: bollydog's
`McpService` in front of a hub vs the SDK's low-level `Server` with a hand-written handler.
Both servers: uvicorn with asyncio + h11 passed explicitly, one process each, pinned to the
same CPU; the client on the other CPU; rounds alternate between the servers.
"""

#: The stack of both servers, passed explicitly (never auto-detected: with uvloop/httptools
#: installed, auto-detection would differ between the bare server and McpService's own Config).
LOOP = "asyncio"
HTTP = "h11"
OUTPUT = {"type": "object", "properties": {"result": {"type": "integer"}}, "required": ["result"]}


class Add(Command):
    """Add two integers."""

    domain = "bench"
    a: int
    b: int


async def add(command: Add) -> int:
    return command.a + command.b


# -- the servers (child processes: `python benchmarks/mcp.py --serve NAME --port P`) -------------


def serve_bollydog(port: int) -> None:
    from benchmarks import _harness

    _harness.explicit_uvicorn_stack(LOOP, HTTP)  # McpService builds its own uvicorn.Config
    from bollydog.entrypoint.mcp.app import McpService
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    async def main() -> None:
        hub = HubService()
        app = hub.add_app(AppService(domain="bench"))
        hub.register(add, app=app)
        hub.add_entrypoint(McpService(host="127.0.0.1", port=port, log_level="warning", exclude=["bollydog.*"]))
        async with hub:
            await asyncio.Event().wait()

    asyncio.run(main())


def serve_bare(port: int) -> None:
    import json

    import mcp_types as types
    import uvicorn
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    tool = types.Tool(name="bench_add", description="Add two integers.", input_schema=schema, output_schema=OUTPUT)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name != tool.name:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name}")
        arguments = params.arguments or {}
        a, b = arguments.get("a"), arguments.get("b")
        if not (isinstance(a, int) and isinstance(b, int)):
            return types.CallToolResult(content=[types.TextContent(text="a and b must be integers")], is_error=True)
        value = a + b
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(value))], structured_content={"result": value})

    # get_tool_input_schema, as bollydog gives it: without it the 2026 transport lists the tools
    # for every call to check the request's headers.
    server = Server("bare", on_list_tools=list_tools, on_call_tool=call_tool,
                    get_tool_input_schema=lambda name: schema if name == tool.name else None)
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, loop=LOOP, http=HTTP, log_config=None,
                log_level="warning", access_log=False)


SERVERS = {"bollydog": serve_bollydog, "bare": serve_bare}

# -- the client -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready")


async def calls(url: str, mode: str, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of ``count`` sequential ``bench_add`` calls on one connected client."""
    from mcp import Client

    latencies: list[float] = []
    async with Client(url, mode=mode) as client:
        await client.list_tools()  # the client checks results against the listed output schema
        for i in range(warmup + count):
            started = time.perf_counter()
            result = await client.call_tool("bench_add", {"a": i, "b": 1})
            elapsed = (time.perf_counter() - started) * 1000
            if result.is_error or result.structured_content != {"result": i + 1}:
                raise RuntimeError(f"unexpected result: {result}")
            if i >= warmup:
                latencies.append(elapsed)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300, help="sequential calls per round and server")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--modes", default="legacy,auto", help="protocol eras: legacy (2025-11-25), auto (2026-07-28)")
    parser.add_argument("--write-docs", action="store_true", help="replace the MCP section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return
    out = H.Output()
    H.pin_self(H.LOAD_CPU)
    ports = {name: _free_port() for name in SERVERS}
    processes = {
        name: subprocess.Popen(
            H.pinned(H.SERVER_CPU, [sys.executable, __file__, "--serve", name, "--port", str(port)]), cwd=ROOT
        )
        for name, port in ports.items()
    }
    try:
        for name, process in processes.items():
            _wait_ready(ports[name], process)
            H.check_pinned(process.pid, H.SERVER_CPU, name)
        out(H.machine(["mcp", "uvicorn", "starlette", "pydantic"]))
        out(H.pinning_note({"both servers": H.SERVER_CPU, "client": H.LOAD_CPU}))
        out(f"uvicorn loop={LOOP} http={HTTP}; {args.rounds} rounds x {args.calls} sequential calls "
            f"per server and era")
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            rates: dict[str, list[float]] = {name: [] for name in SERVERS}
            latencies: dict[str, list[float]] = {name: [] for name in SERVERS}
            for index in range(args.rounds):
                order = list(SERVERS) if index % 2 == 0 else list(reversed(SERVERS))
                for name in order:
                    url = f"http://127.0.0.1:{ports[name]}/mcp"
                    measured = asyncio.run(calls(url, mode, args.calls, args.warmup))
                    rates[name].append(1000 * len(measured) / sum(measured))
                    latencies[name].extend(measured)
            for name in SERVERS:
                r, lat = rates[name], latencies[name]
                out(f"{mode:<7} {name:<9} calls/s min {min(r):7.0f}  median {statistics.median(r):7.0f}  "
                    f"max {max(r):7.0f}   p50 {percentile(lat, 0.50):6.2f} ms  p99 {percentile(lat, 0.99):6.2f} ms")
            ratios = [b / s for b, s in zip(rates["bollydog"], rates["bare"])]
            out(f"{mode:<7} bollydog / bare, per round: min {min(ratios):.2f}  median "
                f"{statistics.median(ratios):.2f}  max {max(ratios):.2f}  (target >= 0.80)")
        if args.write_docs:
            H.write_docs("MCP", INTRO, out)
    finally:
        for process in processes.values():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()

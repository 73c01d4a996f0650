"""HTTP benchmark: one trivial command through bollydog vs a bare Starlette route (and FastAPI).

Each server runs in its own process with one uvicorn worker (same uvicorn settings); the load
comes from a separate process (``wrk`` when installed, else a multi-process httpx generator).
Run from the repository root::

    python benchmarks/http.py [--duration 10] [--connections 32] [--write-docs]

It prints requests/s, p50/p99 latency and the bollydog/Starlette ratio (target >= 0.80), and
with ``--write-docs`` replaces the "HTTP" section of docs/benchmarks.md (other sections kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: keep its folder off sys.path so that the standard library's
# ``http`` package (used by httpx, uvicorn) is the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import time

ROOT = Path(__file__).resolve().parents[1]
QUERY = "a=1&b=2"
PATHS = {
    "bollydog": "/bench/benchservice/add",
    "starlette": "/add",
    "fastapi": "/add",
}

# -- the servers (run in child processes: `python benchmarks/http.py --serve NAME --port P`) ----


from bollydog.models.base import Command  # noqa: E402


class Add(Command):
    domain = "bench"
    a: int
    b: int


async def add(command: Add) -> int:
    return command.a + command.b


def serve_bollydog(port: int) -> None:
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    class BenchService(AppService):
        domain = "bench"

    async def main() -> None:
        hub = HubService()
        app = hub.add_app(BenchService())
        hub.register(add, app=app)
        hub.add_entrypoint(HttpService(host="127.0.0.1", port=port))
        async with hub:
            await asyncio.Event().wait()

    asyncio.run(main())


def _run_uvicorn(app, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning",
                access_log=False, lifespan="off")


def serve_starlette(port: int) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def add(request):
        try:
            a, b = int(request.query_params["a"]), int(request.query_params["b"])
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return JSONResponse(a + b)

    _run_uvicorn(Starlette(routes=[Route("/add", add, methods=["GET", "POST"])]), port)


def serve_fastapi(port: int) -> None:
    from typing import Annotated

    from fastapi import FastAPI, Query
    from pydantic import BaseModel

    class AddQuery(BaseModel):
        a: int
        b: int

    api = FastAPI()

    async def add(q):
        return q.a + q.b

    # Real annotation objects: this module's annotations are strings (PEP 563) and AddQuery is
    # local, which FastAPI could not resolve.
    add.__annotations__ = {"q": Annotated[AddQuery, Query()], "return": int}
    api.get("/add")(add)

    _run_uvicorn(api, port)


SERVERS = {"bollydog": serve_bollydog, "starlette": serve_starlette, "fastapi": serve_fastapi}

# -- load generation ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # Anchored: a "+/- Stdev" column ending in 50% (95.50%) must not be read as the median.
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": int(errors.group(1)) if errors else 0}


def _httpx_worker(url: str, duration: float, connections: int, queue) -> None:
    import httpx

    async def run() -> list[float]:
        latencies: list[float] = []
        end = time.monotonic() + duration
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as client:
            async def loop() -> None:
                while time.monotonic() < end:
                    start = time.perf_counter()
                    await client.get(url)
                    latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.gather(*(loop() for _ in range(connections)))
        return latencies

    queue.put(asyncio.run(run()))


def load_httpx(url: str, duration: int, connections: int, processes: int = 2) -> dict[str, float]:
    queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_httpx_worker, args=(url, duration, connections // processes, queue))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    latencies = sorted(x for _ in workers for x in queue.get())
    for w in workers:
        w.join()
    return {
        "rps": len(latencies) / duration,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "errors": 0,
    }


def measure(name: str, duration: int, connections: int) -> dict[str, float]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", name, "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}{PATHS[name]}?{QUERY}"
    try:
        _wait_ready(url, process)
        load = load_wrk if shutil.which("wrk") else load_httpx
        load(url, 1, connections)  # warm-up
        return load(url, duration, connections)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def write_docs(results: dict[str, dict[str, float]], args: argparse.Namespace, tool: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    base = results["starlette"]["rps"]
    lines = [
        "## HTTP",
        "",
        f"`python benchmarks/http.py --duration {args.duration} --connections {args.connections}`: "
        "`GET ?a=1&b=2` returning `a + b` as JSON; one uvicorn worker per server (h11, no access "
        f"log), load from a separate `{tool}` process, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| server | req/s | vs Starlette | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    lines += [
        "",
        "bollydog does per request: route match, session, `from_input` validation (pydantic), "
        "trace context, hub dispatch through its middleware layers, JSON response with "
        "`traceparent` and message id headers. Target: bollydog >= 0.80 of bare Starlette.",
        "",
    ]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    # Replace our own section (up to the next "## " heading), keep every other section.
    pattern = re.compile(r"^## HTTP\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return
    names = ["starlette", "bollydog"]
    try:
        import fastapi  # noqa: F401

        names.append("fastapi")
    except ImportError:
        print("fastapi not installed: skipped")
    tool = "wrk" if shutil.which("wrk") else "httpx"
    results = {}
    for name in names:
        results[name] = measure(name, args.duration, args.connections)
        r = results[name]
        print(f"{name:<10} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
              + (f"  ({r['errors']} errors)" if r["errors"] else ""))
    ratio = results["bollydog"]["rps"] / results["starlette"]["rps"]
    print(f"bollydog / starlette = {ratio:.2f} (target >= 0.80)")
    print(json.dumps(results))
    if args.write_docs:
        write_docs(results, args, tool)


if __name__ == "__main__":
    main()

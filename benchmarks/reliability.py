"""The reliability campaign of docs/reliability.md, rerun: hostile and careless clients against
a real server, and what they get.

    python benchmarks/reliability.py                 # every item
    python benchmarks/reliability.py slowloris fuzz  # some

Items (each prints what it measured):

- ``slowloris``: connections that trickle a request head a byte a second; how many the server
  still holds before and after ``header_timeout``, and a normal request during the attack;
- ``slowreader``: a WebSocket subscriber that stops reading while 100 KB notifications are
  published; when the server drops it (``send_timeout``), and the server's memory;
- ``subscribers``: req/s of an unrelated HTTP route, without and with 200 idle sockets of 100
  subscription patterns each that match nothing (wrk);
- ``concurrency``: a slow route under 200 connections with ``BOLLYDOG_HUB_CONCURRENCY=10`` and
  ``BOLLYDOG_QUEUE_MAX_SIZE=50``: statuses and the most handlers that ran at once (wrk);
- ``fuzz``: the example service's OpenAPI document fuzzed with schemathesis
  (``tests/reliability/fuzzing.py``), ``--fuzz-cases`` cases per seed.

The server runs in a child process (``serve``), the clients in this one; wrk comes from the
system (``apt-get install wrk``). Needs the ``dev`` extra (schemathesis, websockets, httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/http.py is a sibling: keep this folder off sys.path so that the standard library's
# ``http`` package is the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bollydog.models.base import Command  # noqa: E402

ITEMS = ("slowloris", "slowreader", "subscribers", "concurrency", "fuzz")

# -- the server (child process) -----------------------------------------------------------------


class Ping(Command):
    domain = "rel"


class Blob(Command):
    """A result of ``size`` random bytes, base64: notifications permessage-deflate cannot shrink."""

    domain = "rel"
    size: int


class Slow(Command):
    domain = "rel"
    delay: float


class Stats(Command):
    domain = "rel"


_STATE: dict[str, Any] = {"running": 0, "max_running": 0, "sockets": None}


async def ping(command: Ping) -> str:
    return "pong"


async def blob(command: Blob) -> str:
    return base64.b64encode(os.urandom(command.size)).decode()


async def slow(command: Slow) -> None:
    _STATE["running"] += 1
    _STATE["max_running"] = max(_STATE["max_running"], _STATE["running"])
    try:
        await asyncio.sleep(command.delay)
    finally:
        _STATE["running"] -= 1


async def stats(command: Stats) -> dict[str, Any]:
    from benchmarks._harness import rss_bytes

    return {"sockets": len(_STATE["sockets"].connections), "rss": rss_bytes(), "max_running": _STATE["max_running"]}


async def serve() -> None:
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.websocket.app import SocketService
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    hub = HubService(apps=[AppService.create_from(domain="rel", handlers=[__name__])])
    http = hub.add_entrypoint(HttpService(port=0, log_level="critical"))
    ws = hub.add_entrypoint(SocketService(port=0, log_level="critical"))
    _STATE["sockets"] = ws
    async with hub:
        paths = {spec.key: spec.path for spec in http.routes}
        print(json.dumps({"http": http.url, "ws": ws.url, "port": http.port, "paths": paths}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it


class Server:
    """``python benchmarks/reliability.py serve`` in a child process, with ``env``."""

    def __init__(self, **env: str) -> None:
        self.env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "ERROR", **env}

    def __enter__(self) -> "Server":
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env,
            text=True, cwd=ROOT,
        )
        assert self.process.stdout is not None
        found = json.loads(self.process.stdout.readline())
        self.http, self.ws, self.port, self.paths = found["http"], found["ws"], found["port"], found["paths"]
        self.pid = self.process.pid
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def path(self, name: str) -> str:
        return f"{self.http}{self.paths[f'rel.{name}']}"


# -- the items ----------------------------------------------------------------------------------


async def _stats(server: Server) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(50):  # 503 while a load's queued requests drain
            reply = await client.post(server.path("stats"), json={})
            if reply.status_code != 503:
                break
            await asyncio.sleep(0.2)
        reply.raise_for_status()
        return dict(reply.json())


async def slowloris(out: Any, connections: int = 350) -> None:
    import httpx

    from bollydog.entrypoint.http.settings import HttpSettings

    timeout = HttpSettings().header_timeout
    with Server() as server:
        loop = asyncio.get_running_loop()
        answers: list[bytes] = []
        closed_at: list[float] = []

        async def attacker() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            began = loop.time()
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")

            async def drip() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    writer.write(b"a")
                    await writer.drain()

            dripping = asyncio.create_task(drip())
            try:
                answers.append(await reader.read())
                closed_at.append(loop.time() - began)
            finally:
                dripping.cancel()
                await asyncio.gather(dripping, return_exceptions=True)
                writer.close()

        began = loop.time()
        attack = [asyncio.create_task(attacker()) for _ in range(connections)]
        await asyncio.sleep(timeout / 2)
        held_before = sum(not t.done() for t in attack)
        async with httpx.AsyncClient() as client:
            t0 = loop.time()
            reply = await client.get(server.path("ping"))
            latency = (loop.time() - t0) * 1000
        await asyncio.sleep(max(0.0, timeout + 3 - (loop.time() - began)))
        held_after = sum(not t.done() for t in attack)
        await asyncio.wait(attack, timeout=10)
        for task in attack:
            task.cancel()
        answered = sum(a.startswith(b"HTTP/1.1 408 ") for a in answers)
    out(f"slowloris: {connections} connections trickling a header byte a second, header_timeout {timeout:g} s")
    out(f"  held at {timeout / 2:g} s: {held_before}; held at {timeout + 3:g} s: {held_after}; "
        f"answered 408: {answered}; closed after {min(closed_at):.1f}-{max(closed_at):.1f} s")
    out(f"  GET ping during the attack: {reply.status_code} in {latency:.1f} ms")


async def slowreader(out: Any, events: int = 300, size: int = 75_000) -> None:
    import httpx
    from websockets.asyncio.client import connect

    from bollydog.entrypoint.websocket.app import SocketSettings

    timeout = SocketSettings().send_timeout
    with Server() as server:
        async with httpx.AsyncClient() as client:  # the same work once without a subscriber:
            for _ in range(events):  # what it allocates is not the stalled client's
                (await client.post(server.path("blob"), json={"size": size})).raise_for_status()
        before = await _stats(server)
        loop = asyncio.get_running_loop()
        async with connect(server.ws, max_queue=1) as stalled:
            await stalled.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["rel.blob"]}))
            await stalled.recv()  # subscribed; from now on this client reads nothing
            began = loop.time()
            peak = before["rss"]
            async with httpx.AsyncClient() as client:
                for _ in range(events):
                    (await client.post(server.path("blob"), json={"size": size})).raise_for_status()
                published = loop.time() - began
                dropped = None
                while loop.time() - began < timeout + 30:
                    now = await _stats(server)
                    peak = max(peak, now["rss"])
                    if now["sockets"] == 0:
                        dropped = loop.time() - began
                        break
                    await asyncio.sleep(0.2)
                after = await _stats(server)
                ok = (await client.get(server.path("ping"))).status_code
                for _ in range(events):  # again: is what the dropped client held reused, or leaked?
                    (await client.post(server.path("blob"), json={"size": size})).raise_for_status()
                again = await _stats(server)
    mb = 1 << 20
    out(f"slowreader: a subscriber that stops reading, {events} notifications of {size * 4 // 3 // 1000} KB "
        f"published in {published:.1f} s, send_timeout {timeout:g} s")
    out(f"  dropped after: {'not dropped' if dropped is None else f'{dropped:.1f} s'}; "
        f"GET ping afterwards: {ok}")
    out(f"  server RSS: {before['rss'] / mb:.0f} MB before (the same publishing done once without subscriber), "
        f"max {peak / mb:.0f} MB, {after['rss'] / mb:.0f} MB after the drop, "
        f"{again['rss'] / mb:.0f} MB after publishing as much again")


_RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_RE_TOTAL = re.compile(r"^\s+(\d+) requests in", re.M)
_RE_NON2XX = re.compile(r"^\s+Non-2xx or 3xx responses: (\d+)", re.M)


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict[str, int | float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    if script is not None:
        command[1:1] = ["-s", script]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps, total, non2xx = _RE_RPS.search(text), _RE_TOTAL.search(text), _RE_NON2XX.search(text)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0}


async def subscribers(out: Any, sockets: int = 200, patterns: int = 100, seconds: int = 5, rounds: int = 3) -> None:
    from websockets.asyncio.client import connect

    alone: list[float] = []
    crowded: list[float] = []
    with Server() as server:
        url = server.path("ping")
        for _ in range(rounds):  # alternating, so that the machine's drift hits both alike
            alone.append((await asyncio.to_thread(wrk, url, seconds, 32))["rps"])
            clients = [await connect(server.ws) for _ in range(sockets)]
            try:
                for i, client in enumerate(clients):
                    topics = [f"nothing{i}.p{j}.*" for j in range(patterns)]
                    await client.send(json.dumps({"type": "subscribe", "id": i, "topics": topics}))
                    assert json.loads(await client.recv())["type"] == "subscribed"
                crowded.append((await asyncio.to_thread(wrk, url, seconds, 32))["rps"])
            finally:
                await asyncio.gather(*(c.close() for c in clients))

    def spread(values: list[float]) -> str:
        ordered = sorted(values)
        return f"{ordered[0]:,.0f} / {ordered[len(ordered) // 2]:,.0f} / {ordered[-1]:,.0f}"

    ratios = sorted(c / a for c, a in zip(crowded, alone))
    out(f"subscribers: GET ping, wrk -c32 {seconds} s, {rounds} rounds, req/s min / median / max")
    out(f"  no sockets: {spread(alone)}; {sockets} idle sockets x {patterns} patterns: {spread(crowded)}; "
        f"ratio per round {ratios[0]:.0%} / {ratios[len(ratios) // 2]:.0%} / {ratios[-1]:.0%}")


async def concurrency(out: Any, connections: int = 200, seconds: int = 5) -> None:
    script = Path("/tmp") / f"bollydog-reliability-{os.getpid()}.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = \'{"delay": 0.05}\'\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    try:
        with Server(BOLLYDOG_HUB_CONCURRENCY="10", BOLLYDOG_QUEUE_MAX_SIZE="50") as server:
            result = await asyncio.to_thread(wrk, server.path("slow"), seconds, connections, str(script))
            seen = await _stats(server)
    finally:
        script.unlink()
    ok = result["requests"] - result["non2xx"]
    out(f"concurrency: POST slow (50 ms), wrk -c{connections} {seconds} s, "
        "BOLLYDOG_HUB_CONCURRENCY=10 BOLLYDOG_QUEUE_MAX_SIZE=50")
    out(f"  {result['requests']:,} requests: {ok:,} answered 2xx, {result['non2xx']:,} refused (503); "
        f"most handlers at once: {seen['max_running']}")


async def fuzz(out: Any, cases: int, seeds: int) -> None:
    from bollydog.bootstrap import build
    from bollydog.entrypoint.http.app import HttpService
    from tests.reliability.fuzzing import fuzz as run
    from tests.reliability.test_fuzz_openapi import CONFIG, EXPECTED

    os.environ.update(BOLLYDOG_HTTP_SERVICE_PORT="0", BOLLYDOG_WS_SERVICE_PORT="0",
                      BOLLYDOG_HTTP_SERVICE_LOG_LEVEL="critical", BOLLYDOG_LOG_LEVEL="CRITICAL")
    os.environ.setdefault("BOLLYDOG_EXAMPLE_DATABASE_URL", f"sqlite+aiosqlite:////tmp/bollydog-fuzz-{os.getpid()}.db")
    logging.disable(logging.ERROR)  # the example's handlers log what they raise: not the measurement
    composition = build(CONFIG)
    http = next(e for e in composition.entrypoints if isinstance(e, HttpService))
    out(f"fuzz: example/config.yaml's OpenAPI document, schemathesis, {cases} cases x {seeds} seeds "
        "(half valid, half invalid input)")
    async with composition.hub:
        for seed in range(1, seeds + 1):
            report = await asyncio.to_thread(run, http.url, cases, EXPECTED, seed=seed)
            out(f"  seed {seed}: {report.summary()}")
            for line in (report.server_errors + report.nonconforming)[:5]:
                out(f"    {line[:400]}")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="*", help=f"any of {', '.join(ITEMS)} (default: every item)")
    parser.add_argument("--fuzz-cases", type=int, default=2000)
    parser.add_argument("--fuzz-seeds", type=int, default=3)
    args = parser.parse_args(argv)
    items = args.items or list(ITEMS)
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    out = print
    out(f"$ python benchmarks/reliability.py {' '.join(argv)}".rstrip())
    for item in items:
        began = time.monotonic()
        if item == "fuzz":
            await fuzz(out, args.fuzz_cases, args.fuzz_seeds)
        else:
            await globals()[item](out)
        out(f"  ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(serve())
    else:
        sys.exit(asyncio.run(main(sys.argv[1:])))

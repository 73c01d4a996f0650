"""HTTP benchmark: one trivial command through bollydog vs bare Starlette, FastAPI and Litestar.

Every server answers ``GET /...add?a=1&b=2`` with ``3`` (JSON), validating both integers.
Run from the repository root (the peers: ``pip install -e '.[bench]'``; the load: ``wrk``)::

    python benchmarks/http.py [--rounds 5] [--duration 2] [--connections 32 | --scaling]
                              [--stacks uvloop+httptools,asyncio+h11] [--seed N] [--write-docs]

Fairness:

- every server runs in its own process under uvicorn, one worker, access log off, lifespan
  off, log level warning, and the stack passed explicitly to every uvicorn (``loop=``,
  ``http=``): each stack (uvloop+httptools, asyncio+h11) is measured for every server in the
  same run. Each server reports the event loop and protocol class it actually runs; a mismatch
  stops the run. bollydog's ``HttpService`` builds its own ``uvicorn.Config``: this script
  gives it the same ``loop``/``http`` by wrapping ``uvicorn.Config`` in the server process
  (benchmark-only; bollydog's code is not changed), and runs its hub on the same loop factory;
- every server is pinned to CPU 0, the load generator (``wrk -t1``) to CPU 1;
- rounds alternate between the servers (forward, then reversed, ...; ``--seed`` shuffles), each
  server warmed up first; req/s is printed as min / median / max over the rounds, and the
  ratio to bare Starlette as min / median / max of the per-round ratios (same stack, same
  round); p50/p99 are medians over the rounds of wrk's latency distribution;
- wrk's output is parsed with anchored patterns (the ``Requests/sec:`` line, the lines of the
  ``Latency Distribution`` block); non-2xx responses or socket errors are printed. Without wrk,
  a multi-process httpx load generator (pinned the same way) is used and the output says so.

Target: bollydog >= 0.80 of bare Starlette (median of the per-round ratios), on each stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: keep its folder off sys.path so that the standard library's
# ``http`` package (used by httpx, uvicorn) is the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: bollydog from this checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402
from bollydog.models.base import Command  # noqa: E402

QUERY = "a=1&b=2"
EXPECTED = b"3"
PATHS = {
    "bollydog": "/bench/benchservice/add",
    "starlette": "/add",
    "starlette-1w": "/add",
    "fastapi": "/add",
    "litestar": "/add",
}
#: The servers that run on bollydog's connection guard (its protocols); the others on uvicorn's.
GUARDED = frozenset({"bollydog", "starlette-1w"})
#: The peers and what provides them (the ``bench`` extra).
PEERS = {"fastapi": "fastapi", "litestar": "litestar"}
BASELINE = "starlette"
#: stack name -> (uvicorn loop=, uvicorn http=, what the loop module starts with, protocol class)
STACKS = {
    "uvloop+httptools": ("uvloop", "httptools", "uvloop", "HttpToolsProtocol"),
    "asyncio+h11": ("asyncio", "h11", "asyncio", "H11Protocol"),
}
STACK_MODULES = {"uvloop+httptools": ("uvloop", "httptools"), "asyncio+h11": ("h11",)}
TARGET = 0.80

# -- the servers (child processes: `python benchmarks/http.py --serve NAME --port P --stack S`) ----


class Add(Command):
    domain = "bench"
    a: int
    b: int


async def add(command: Add) -> int:
    return command.a + command.b


def uvicorn_options(stack: str) -> dict[str, Any]:
    """The uvicorn settings every server gets (bollydog's HttpService sets the same ones)."""
    loop, http = STACKS[stack][:2]
    return {"loop": loop, "http": http, "log_config": None, "log_level": "warning",
            "access_log": False, "lifespan": "off"}


def _ready(config: Any) -> None:
    """Tell the parent which event loop and protocol this server actually runs."""
    loop = asyncio.get_running_loop()
    # uvicorn's protocol class, or the one bollydog's subclass (read timeout, connection cap)
    # is built on: the parser is uvicorn's either way.
    protocol = next(c for c in config.http_protocol_class.__mro__ if c.__module__.startswith("uvicorn."))
    print(json.dumps({"pid": os.getpid(), "loop": f"{type(loop).__module__}.{type(loop).__name__}",
                      "http": f"{protocol.__module__}.{protocol.__name__}",
                      "guarded": config.http_protocol_class.__module__ == "bollydog.entrypoint.kit.guard"}), flush=True)


def _loop_factory(stack: str) -> Any:
    import uvicorn

    return uvicorn.Config("unused:app", loop=STACKS[stack][0]).get_loop_factory()


def serve_bollydog(port: int, stack: str) -> None:
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    configs = H.explicit_uvicorn_stack(*STACKS[stack][:2])  # HttpService builds its own Config

    class BenchService(AppService):
        domain = "bench"

    async def main() -> None:
        hub = HubService()
        app = hub.add_app(BenchService())
        hub.register(add, app=app)
        hub.add_entrypoint(HttpService(host="127.0.0.1", port=port, log_level="warning", access_log=False))
        async with hub:
            if not configs or not configs[-1].loaded:
                raise RuntimeError("HttpService did not build its uvicorn.Config through uvicorn.Config")
            _ready(configs[-1])
            await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=_loop_factory(stack)) as runner:
        runner.run(main())


def _serve_uvicorn(app: Any, port: int, stack: str) -> None:
    import uvicorn

    _serve_config(uvicorn.Config(app, host="127.0.0.1", port=port, **uvicorn_options(stack)))


def _serve_config(config: Any) -> None:
    """Serve ``config`` (a uvicorn.Config) until killed; tell the parent once it accepts."""
    import uvicorn

    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.02)
        _ready(config)
        await task

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def add(request):
        try:
            a, b = int(request.query_params["a"]), int(request.query_params["b"])
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 422)
        return JSONResponse(a + b)

    return Starlette(routes=[Route("/add", add, methods=["GET", "POST"])])


def serve_starlette(port: int, stack: str) -> None:
    _serve_uvicorn(_starlette_app(), port, stack)


def serve_starlette_one_write(port: int, stack: str) -> None:
    """Bare Starlette served through bollydog's connection guard (the one-write transport, the
    head deadline): what bollydog's server layer is worth without bollydog's application code."""
    from bollydog.entrypoint.kit import guard

    protocol = guard._BoundedH11 if STACKS[stack][1] == "h11" else guard.http_protocol()
    _serve_config(guard.Config(_starlette_app(), limits=guard.Limits(), host="127.0.0.1", port=port,
                               **{**uvicorn_options(stack), "http": protocol}))


def serve_fastapi(port: int, stack: str) -> None:
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
    _serve_uvicorn(api, port, stack)


def serve_litestar(port: int, stack: str) -> None:
    from litestar import Litestar, get

    async def add(a: int, b: int) -> int:
        return a + b

    add.__annotations__ = {"a": int, "b": int, "return": int}
    _serve_uvicorn(Litestar([get("/add")(add)], openapi_config=None), port, stack)


SERVERS = {"bollydog": serve_bollydog, "starlette": serve_starlette, "starlette-1w": serve_starlette_one_write,
           "fastapi": serve_fastapi, "litestar": serve_litestar}
#: The server bollydog is also compared with: the same server layer, without its application code.
ONE_WRITE = "starlette-1w"

# -- load generation ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
RE_DISTRIBUTION = re.compile(r"^\s+Latency Distribution\s*$", re.M)
RE_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
RE_TOTAL = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m), ", re.M)
RE_NON2XX = re.compile(r"^\s+Non-2xx or 3xx responses:\s+(\d+)\s*$", re.M)
RE_SOCKET = re.compile(r"^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.M)


def parse_wrk(out: str) -> dict[str, float]:
    """wrk ``--latency`` output -> req/s, p50/p99 (ms), errors. Anchored on whole lines: the
    ``Requests/sec:`` line and the lines of the ``Latency Distribution`` block (not the
    ``Thread Stats`` lines, whose ``+/- Stdev`` column also ends in ``%``)."""
    rps = RE_RPS.search(out)
    block = RE_DISTRIBUTION.search(out)
    if rps is None or block is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    percentiles = {int(q): float(v) * _UNITS[u] for q, v, u in RE_PERCENTILE.findall(out, block.end())}
    if 50 not in percentiles or 99 not in percentiles:
        raise RuntimeError(f"no latency distribution in wrk output:\n{out}")
    non2xx = RE_NON2XX.search(out)
    sockets = RE_SOCKET.search(out)
    total = RE_TOTAL.search(out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": percentiles[50],
        "p99_ms": percentiles[99],
        "requests": int(total.group(1)) if total else 0,
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0),
    }


def load_wrk(url: str, duration: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        H.pinned(H.LOAD_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url]),
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


def _httpx_worker(url: str, duration: float, connections: int, queue: Any) -> None:
    import httpx

    H.pin_self(H.LOAD_CPU)

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


def load_httpx(url: str, duration: float, connections: int, processes: int = 2) -> dict[str, float]:
    queue = multiprocessing.Queue()
    per = max(1, connections // processes)
    workers = [multiprocessing.Process(target=_httpx_worker, args=(url, duration, per, queue))
               for _ in range(min(processes, connections))]
    for w in workers:
        w.start()
    latencies = sorted(x for _ in workers for x in queue.get())
    for w in workers:
        w.join()
    return {"rps": len(latencies) / duration, "p50_ms": H.percentile(latencies, 0.50),
            "p99_ms": H.percentile(latencies, 0.99), "requests": len(latencies), "errors": 0}


# -- the run ------------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, stack: str) -> None:
        self.name, self.stack = name, stack
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}{PATHS[name]}?{QUERY}"
        self.process = subprocess.Popen(
            H.pinned(H.SERVER_CPU, [sys.executable, __file__, "--serve", name, "--port", str(self.port),
                                    "--stack", stack]),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING"},
        )
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            H.stop(self.process)
            raise RuntimeError(f"{self.name} ({self.stack}) did not start: {self.process.stderr.read()[-3000:]}")
        info = json.loads(line)
        self.pid = info["pid"]
        _, _, loop_module, protocol = STACKS[self.stack]
        if not info["loop"].startswith(loop_module) or not info["http"].endswith("." + protocol):
            raise RuntimeError(f"{self.name}: asked for {self.stack}, runs {info['loop']} + {info['http']}")
        if info["guarded"] != (self.name in GUARDED):
            raise RuntimeError(f"{self.name}: {'not ' if not info['guarded'] else ''}served by bollydog's connection guard")
        H.check_pinned(self.pid, H.SERVER_CPU, self.name)
        self.loop, self.protocol = info["loop"], info["http"].rsplit(".", 1)[1]
        import httpx

        response = httpx.get(self.url, timeout=5)
        if response.status_code != 200 or response.content.strip() != EXPECTED:
            raise RuntimeError(f"{self.name}: GET {self.url} -> {response.status_code} {response.content!r}")

    def close(self) -> None:
        H.stop(self.process)


def available_servers(requested: list[str], out: Any) -> list[str]:
    names = []
    for name in requested:
        module = PEERS.get(name)
        if module and importlib.util.find_spec(module) is None:
            out(f"{name}: not installed, skipped (install the peers: {H.INSTALL_HINT})")
            continue
        names.append(name)
    return names


def available_stacks(requested: list[str], out: Any) -> list[str]:
    stacks = []
    for stack in requested:
        missing = [m for m in STACK_MODULES[stack] if importlib.util.find_spec(m) is None]
        if missing:
            out(f"stack {stack}: {', '.join(missing)} not installed, skipped ({H.INSTALL_HINT})")
            continue
        stacks.append(stack)
    return stacks


def run_stack(stack: str, names: list[str], connections: list[int], args: argparse.Namespace,
              load: Any, out: Any) -> dict[int, dict[str, float]]:
    servers = {name: Server(name, stack) for name in names}
    medians: dict[int, dict[str, float]] = {}
    try:
        for server in servers.values():
            server.wait_ready()
        for c in connections:
            for server in servers.values():  # warm-up, not recorded
                load(server.url, args.warmup, c)
            rates: dict[str, list[float]] = {n: [] for n in names}
            p50s: dict[str, list[float]] = {n: [] for n in names}
            p99s: dict[str, list[float]] = {n: [] for n in names}
            cpu: dict[str, list[float]] = {n: [] for n in names}
            per_cpu_s: dict[str, list[float]] = {n: [] for n in names}
            errors: dict[str, int] = {n: 0 for n in names}
            idle, loadgen, others0, others1 = [], [], [], []
            for order in H.rounds_order(names, args.rounds, args.seed):
                for name in order:
                    meter = H.CpuMeter({n: (s.pid, H.SERVER_CPU) for n, s in servers.items()},
                                       children_cpu=H.LOAD_CPU if load is load_wrk else None)
                    started = time.perf_counter()
                    r = load(servers[name].url, args.duration, c)
                    wall = time.perf_counter() - started
                    used = meter.stop()
                    rates[name].append(r["rps"])
                    p50s[name].append(r["p50_ms"])
                    p99s[name].append(r["p99_ms"])
                    errors[name] += int(r["errors"])
                    cpu[name].append(used[name] / wall)
                    if used[name] > 0:
                        per_cpu_s[name].append(r["requests"] / used[name])
                    idle.append(sum(used[n] for n in names if n != name) / wall)
                    loadgen.append(used["children"] / wall)
                    others0.append(used.get(f"others@{H.SERVER_CPU}", float("nan")) / wall)
                    others1.append(used.get(f"others@{H.LOAD_CPU}", float("nan")) / wall)
            out(f"\n{stack} (uvicorn loop={STACKS[stack][0]} http={STACKS[stack][1]}), "
                f"{load.__name__.removeprefix('load_')} -c{c} -d{args.duration:g}s, {args.rounds} rounds; "
                f"ratio = req/s / {BASELINE}'s in the same round")
            out(f"{'server':<12} {H.triple_header('req/s min / median / max', 8)}  {'p50 ms':>6} "
                f"{'p99 ms':>6}  {'CPU':>4}  {H.triple_header('ratio min / median / max', 5)}  "
                f"{'req/CPU-s':>9} {'ratio':>5}")
            for name in names:
                ratios = H.per_round_ratios(rates[name], rates[BASELINE])
                cpu_ratios = H.per_round_ratios(per_cpu_s[name], per_cpu_s[BASELINE])
                flag = f"  ({errors[name]} errors)" if errors[name] else ""
                out(f"{name:<12} {H.triple(rates[name], ',.0f', 8)}  {H.median(p50s[name]):>6.2f} "
                    f"{H.median(p99s[name]):>6.2f}  {H.median(cpu[name]):>4.0%}  "
                    f"{H.triple(ratios, '.2f', 5)}  {H.median(per_cpu_s[name]):>9,.0f} "
                    f"{H.median(cpu_ratios):>5.2f}{flag}")
                medians.setdefault(c, {})[name] = H.median(ratios)
            if "bollydog" in names and ONE_WRITE in names:
                medians[c][f"bollydog/{ONE_WRITE}"] = H.median(H.per_round_ratios(rates["bollydog"], rates[ONE_WRITE]))
            out(f"(medians over the rounds: p50/p99 of wrk's distribution; CPU = the server's CPU time / "
                f"wall time; req/CPU-s = requests per second of the server's CPU, and its ratio; idle "
                f"servers {H.median(idle):.1%} of CPU {H.SERVER_CPU}, load generator "
                f"{H.median(loadgen):.0%} of CPU {H.LOAD_CPU}; the rest of the machine (other processes, interrupts) "
                f"{H.median(others0):.0%} of CPU {H.SERVER_CPU}, {H.median(others1):.0%} of CPU {H.LOAD_CPU})")
    finally:
        for server in servers.values():
            server.close()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stack", choices=sorted(STACKS), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=2, help="seconds of load per round and server")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load per server before the rounds")
    parser.add_argument("--connections", default="32", help="comma-separated wrk -c values (default 32)")
    parser.add_argument("--scaling", action="store_true", help="the scaling rows: --connections 1,32,256")
    parser.add_argument("--stacks", default=",".join(STACKS), help="comma-separated, from: " + ", ".join(STACKS))
    parser.add_argument("--servers", default="starlette,bollydog,starlette-1w,fastapi,litestar")
    parser.add_argument("--seed", type=int, default=None, help="shuffle the order in each round from this seed")
    parser.add_argument("--write-docs", action="store_true", help="replace the HTTP section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port, args.stack)
        return
    connections = [1, 32, 256] if args.scaling else [int(c) for c in args.connections.split(",")]
    H.pin_self(H.LOAD_CPU)  # this process only waits; keep it off the servers' CPU
    out = H.Output()
    out(H.machine(["starlette", "uvicorn", "uvloop", "httptools", "h11", "fastapi", "litestar", "pydantic"]))
    out(H.pinning_note({"every server": H.SERVER_CPU, "load generator": H.LOAD_CPU}))
    if shutil.which("wrk"):
        load = load_wrk
        out("load generator: wrk -t1 --latency (one thread); " + H.order_note(args.seed))
    else:
        load = load_httpx
        out("load generator: wrk NOT FOUND (apt-get install wrk), using 2 httpx processes instead, "
            "which saturate before the servers do: the ratios are not comparable with wrk's; "
            + H.order_note(args.seed))
    names = available_servers([n.strip() for n in args.servers.split(",") if n.strip()], out)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    stacks = available_stacks([s.strip() for s in args.stacks.split(",") if s.strip()], out)
    results = {stack: run_stack(stack, names, connections, args, load, out) for stack in stacks}
    if "bollydog" in names:
        out(f"\nTarget: bollydog >= {TARGET:.2f} of bare Starlette (median of per-round ratios):")
        for stack, by_c in results.items():
            for c, ratios in by_c.items():
                ratio = ratios["bollydog"]
                same = ratios.get(f"bollydog/{ONE_WRITE}")
                also = f" (against Starlette on the same one-write server layer, {ONE_WRITE}: {same:.2f})" if same else ""
                out(f"- {stack} -c{c}: {ratio:.2f} -> {'met' if ratio >= TARGET else 'NOT met'}{also}")
    if args.write_docs:
        H.write_docs("HTTP", INTRO, out)


INTRO = """\
`GET ?a=1&b=2` returning `a + b` as JSON, both integers validated, through bollydog's
`HttpService` (route match, session, `from_input` validation, trace context, hub dispatch
through its middleware layers, JSON response with `traceparent` and message id headers) and
through bare Starlette, FastAPI and Litestar routes. bollydog's server sends each response in
one write (its connection guard keeps what one turn of the loop writes, and sends a response at once when no other request is in flight); the peers run
uvicorn's protocols as they are, which write a response's head and body apart. `starlette-1w`
is bare Starlette served through bollydog's connection guard (the same one-write transport and
head deadline): the target is against bare Starlette, and the ratio against `starlette-1w` says
what bollydog's application code costs on the same server layer. One uvicorn worker per server, the same
uvicorn settings, the stack passed explicitly to every server (each reports the loop and
protocol class it runs) and both stacks measured for every server in the same run; servers on
CPU 0, `wrk -t1 --latency` on CPU 1; rounds alternate between the servers; ratios are per-round
(same stack, same round). "CPU" near 100% means the server was the bottleneck; "the rest
of the machine" is what other processes and interrupts took of each CPU meanwhile (the noise); req/CPU-s
divides by the CPU the server actually got."""


if __name__ == "__main__":
    main()

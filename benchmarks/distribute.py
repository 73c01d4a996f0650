"""Distribute benchmark: request/reply over Redis Streams, bollydog vs hand-written redis-py.

    python benchmarks/distribute.py [--rounds 5] [--messages 5000] [--sequential 1000]
                                    [--inflight 64] [--sizes 100[,10000,1000000]]
                                    [--sides bollydog,raw,faststream] [--url URL] [--seed N]
                                    [--write-docs]

The same request/reply, a command ``{a, data}`` answered with ``a + len(data)``, three ways:

- **bollydog**: its public API only. Two processes built by ``bollydog.bootstrap.build`` from one
  config dict (domain ``bench`` + a ``distribute`` section, every transport option at its
  default): the consumer with ``include=["bench"]``, the front with ``exclude=["bench"]``,
  which calls ``await hub.execute(Echo(...))``.
- **raw**: hand-written redis-py, what one would write without a framework. Front: each
  request one ``XADD`` (own round trip) of ``{id, reply_to, payload}`` (payload JSON) to a
  stream, then awaits a future; one reader task ``XREAD BLOCK`` on its reply stream resolves
  the futures by id. Consumer: ``XREADGROUP COUNT 32 BLOCK`` (bollydog's default batch),
  ``json.loads``, the sum, then one pipeline per batch: reply ``XADD`` (``MAXLEN ~``) + ``XACK``
  + ``XDEL`` (the Redis commands bollydog sends per request). No validation, no envelope.
- **faststream** (when installed): FastStream's Redis ``broker.request(..., stream=...)`` to a
  ``StreamSub`` consumer group subscriber (FastStream answers on a pub/sub channel per request).

Fairness: every side has the same two processes, pinned the same way (consumer on CPU 0, front
on CPU 1; the Redis server this script starts on CPU 1 too), the same Redis, the same number in
flight (sequential: one at a time; then ``--inflight`` concurrent callers), the same payloads
and the same front driver code timing them. All processes stay up for the whole run; rounds
alternate between the sides (forward, then reversed; ``--seed`` shuffles), after a warm-up.
Rates are min / median / max over the rounds, ratios min / median / max of per-round ratios to
raw; CPU is each process's CPU time per request (median over rounds), so where the budget goes
is visible, and "CPU ratio" is raw's total CPU per request over the side's (per round, median):
the comparison at equal CPU that the rest of the machine's load does not bend. Latency: p50/p99 over every sequential request of all rounds.

Targets (bollydog, 100 B payload): 64 in flight, >= 0.85 of raw by req/s and at equal CPU;
sequential p50 within 0.1 ms of raw's, p50 <= 1 ms, p99 <= 2.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Not this folder on sys.path (its http.py would shadow the standard library's); the repository
# root instead: bollydog from this checkout and ``benchmarks._harness``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402

CONSUMER_CPU = H.SERVER_CPU
FRONT_CPU = H.LOAD_CPU
REDIS_CPU = H.LOAD_CPU
BASELINE = "raw"
SIDES = ["bollydog", "raw", "faststream"]
HANDLERS = "benchmarks._distribute_app"
P50_TARGET, P99_TARGET = 1.0, 2.5
#: Against raw: the share of its req/s and of its CPU per request; the sequential p50 margin (ms).
RATIO_TARGET, P50_MARGIN = 0.85, 0.1


# -- child processes: one JSON line per message on the protocol pipe ------------------------------


def protocol_pipe() -> Any:
    """The real stdout for the parent; anything else printed (logs) goes to stderr."""
    pipe = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return pipe


def wait_for_term() -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


def bollydog_config(url: str, prefix: str) -> dict[str, Any]:
    return {
        "bench": {"handlers": [HANDLERS]},
        "distribute": {"app": "bollydog.transport.redis.RedisTransport", "url": url, "prefix": prefix},
    }


async def consumer_bollydog(url: str, prefix: str, ready: Any) -> None:
    from bollydog.bootstrap import build

    stop = wait_for_term()
    hub = build(bollydog_config(url, prefix), include=["bench"], entrypoints=False).hub
    async with hub:
        ready()
        await stop.wait()


async def consumer_raw(url: str, prefix: str, ready: Any) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    stream, group = f"{prefix}:requests", "raw"
    client = aioredis.Redis.from_url(url)
    reader = aioredis.Redis.from_url(url, single_connection_client=True)
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError:  # BUSYGROUP
        pass
    consumer = f"c-{os.getpid()}"
    ready()
    while True:  # SIGTERM ends the process
        response = await reader.xreadgroup(group, consumer, {stream: ">"}, count=32, block=2000)
        for _, entries in response or ():
            ids = []
            async with client.pipeline(transaction=False) as pipe:
                for entry_id, fields in entries:
                    payload = json.loads(fields[b"payload"])
                    result = payload["a"] + len(payload["data"])
                    pipe.xadd(fields[b"reply_to"], {"id": fields[b"id"], "result": json.dumps(result)},
                              maxlen=10_000, approximate=True)
                    ids.append(entry_id)
                pipe.xack(stream, group, *ids)
                pipe.xdel(stream, *ids)
                await pipe.execute()


async def consumer_faststream(url: str, prefix: str, ready: Any) -> None:
    from faststream.redis import RedisBroker, StreamSub

    broker = RedisBroker(url, logger=None)  # no log line per message (bollydog logs none either)

    async def handle(body: dict) -> int:
        return body["a"] + len(body["data"])

    handle.__annotations__ = {"body": dict, "return": int}
    broker.subscriber(stream=StreamSub(f"{prefix}:fs", group="fs", consumer=f"c-{os.getpid()}"))(handle)
    stop = wait_for_term()
    await broker.start()
    ready()
    await stop.wait()
    await broker.stop()


class FrontBollydog:
    def __init__(self, url: str, prefix: str) -> None:
        from bollydog.bootstrap import build

        self.hub = build(bollydog_config(url, prefix), exclude=["bench"], entrypoints=False).hub

    async def __aenter__(self) -> "FrontBollydog":
        from benchmarks._distribute_app import Echo

        self.echo = Echo
        await self.hub.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.hub.__aexit__(*exc)

    async def call(self, a: int, data: str) -> Any:
        return await self.hub.execute(self.echo(a=a, data=data))


class FrontRaw:
    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.stream = url, f"{prefix}:requests"
        self.reply_key = f"{prefix}:reply:{os.getpid()}"
        self.pending: dict[bytes, asyncio.Future] = {}
        self.counter = 0

    async def __aenter__(self) -> "FrontRaw":
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(self.url, max_connections=256)
        self.reader = aioredis.Redis.from_url(self.url, single_connection_client=True)
        self.task = asyncio.create_task(self.read_replies())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.task.cancel()

    async def read_replies(self) -> None:
        last = "0"
        while True:
            response = await self.reader.xread({self.reply_key: last}, count=1000, block=2000)
            for _, entries in response or ():
                for entry_id, fields in entries:
                    last = entry_id
                    future = self.pending.pop(fields[b"id"], None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(fields[b"result"]))

    async def call(self, a: int, data: str) -> Any:
        self.counter += 1
        message_id = str(self.counter).encode()
        future = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        payload = json.dumps({"a": a, "data": data})
        await self.client.xadd(self.stream, {"id": message_id, "reply_to": self.reply_key, "payload": payload})
        return await future


class FrontFaststream:
    def __init__(self, url: str, prefix: str) -> None:
        from faststream.redis import RedisBroker

        self.broker, self.stream = RedisBroker(url, max_connections=256, logger=None), f"{prefix}:fs"

    async def __aenter__(self) -> "FrontFaststream":
        await self.broker.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.broker.stop()

    async def call(self, a: int, data: str) -> Any:
        response = await self.broker.request({"a": a, "data": data}, stream=self.stream, maxlen=10_000, timeout=60)
        return json.loads(response.body)


CONSUMERS = {"bollydog": consumer_bollydog, "raw": consumer_raw, "faststream": consumer_faststream}
FRONTS = {"bollydog": FrontBollydog, "raw": FrontRaw, "faststream": FrontFaststream}


async def drive(front: Any, mode: str, n: int, inflight: int, size: int) -> dict[str, Any]:
    """The same timing code for every side: ``n`` requests, one at a time or ``inflight`` at once."""
    data = "x" * size

    async def one(i: int) -> float:
        started = time.perf_counter()
        result = await front.call(i, data)
        if result != i + size:
            raise RuntimeError(f"wrong reply {result!r} for {i} + {size}")
        return time.perf_counter() - started

    started = time.perf_counter()
    if mode == "seq":
        latencies = [await one(i) for i in range(n)]
        return {"rate": n / (time.perf_counter() - started), "lat_ms": [x * 1000 for x in latencies]}
    numbers = iter(range(n))

    async def worker() -> None:
        for i in numbers:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return {"rate": n / (time.perf_counter() - started)}


async def front_main(side: str, url: str, prefix: str, pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with FRONTS[side](url, prefix) as front:
        await drive(front, "seq", 200, 1, 100)  # warm-up
        await drive(front, "flight", 2000, 64, 100)
        pipe.write(json.dumps({"pid": os.getpid()}) + "\n")
        while line := await reader.readline():
            request = json.loads(line)
            pipe.write(json.dumps(await drive(front, **request)) + "\n")


def child(role: str, side: str, url: str, prefix: str) -> None:
    pipe = protocol_pipe()
    if role == "front":
        asyncio.run(front_main(side, url, prefix, pipe))
    else:
        asyncio.run(CONSUMERS[side](url, prefix, lambda: pipe.write(json.dumps({"pid": os.getpid()}) + "\n")))


# -- the parent ---------------------------------------------------------------------------------


class Child:
    def __init__(self, role: str, side: str, url: str, prefix: str, cpu: int) -> None:
        self.role, self.side = role, side
        self.process = subprocess.Popen(
            H.pinned(cpu, [sys.executable, __file__, "--role", role, "--side", side, "--url", url,
                           "--prefix", prefix]),
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING"},
        )
        self.pid = self.process.pid
        self.cpu = cpu

    def read(self, timeout: float = 600) -> dict[str, Any]:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            H.stop(self.process)
            raise RuntimeError(f"{self.side} {self.role} stopped or timed out (see its stderr above)")
        return json.loads(line)

    def ready(self) -> None:
        self.pid = self.read(120)["pid"]
        H.check_pinned(self.pid, self.cpu, f"{self.side} {self.role}")

    def run(self, **request: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        H.stop(self.process)


def start_redis(out: Any) -> tuple[str, subprocess.Popen | None]:
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server not found: apt-get install redis-server, or pass --url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        H.pinned(REDIS_CPU, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    version = client.info("server")["redis_version"]
    client.close()
    out(f"Redis {version}: a throwaway server started by this script on 127.0.0.1:{port} "
        "(no persistence), pinned to CPU " + str(REDIS_CPU))
    return f"redis://127.0.0.1:{port}/0", process


def counts(size: int, messages: int, sequential: int) -> tuple[int, int]:
    """Requests per round: fewer for large payloads (about 200 MB per in-flight round)."""
    return min(messages, max(50, 200_000_000 // size)), min(sequential, max(50, 50_000_000 // size))


def size_name(size: int) -> str:
    for unit, factor in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def measure(sides: list[str], fronts: dict[str, Child], consumers: dict[str, Child], redis_pid: int | None,
            request: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, list[Any]]]:
    results: dict[str, dict[str, list[Any]]] = {
        s: {"rate": [], "lat_ms": [], "p50": [], "front": [], "consumer": [], "redis": [], "total": [],
            "others": []}
        for s in sides
    }
    processes: dict[str, tuple[int, int | None]] = {}
    for side in sides:
        processes[f"front:{side}"] = (fronts[side].pid, FRONT_CPU)
        processes[f"consumer:{side}"] = (consumers[side].pid, CONSUMER_CPU)
    if redis_pid:
        processes["redis"] = (redis_pid, REDIS_CPU)
    for order in H.rounds_order(sides, args.rounds, args.seed):
        for side in order:
            meter = H.CpuMeter(processes)
            started = time.perf_counter()
            r = fronts[side].run(**request)
            wall = time.perf_counter() - started
            used = meter.stop()
            row = results[side]
            row["rate"].append(r["rate"])
            # µs of CPU per request
            row["front"].append(used[f"front:{side}"] * 1e6 / request["n"])
            row["consumer"].append(used[f"consumer:{side}"] * 1e6 / request["n"])
            row["redis"].append(used["redis"] * 1e6 / request["n"] if "redis" in used else float("nan"))
            row["total"].append(row["front"][-1] + row["consumer"][-1] + (row["redis"][-1] if "redis" in used else 0))
            row["others"].append(tuple(used.get(f"others@{cpu}", float("nan")) / wall
                                       for cpu in (CONSUMER_CPU, FRONT_CPU)))
            if "lat_ms" in r:
                row["lat_ms"].extend(r["lat_ms"])
                row["p50"].append(H.percentile(r["lat_ms"], 0.5))
    return results


def report(title: str, sides: list[str], results: dict[str, dict[str, list[Any]]], out: Any,
           latency: bool) -> dict[str, tuple[float, float]]:
    """Print the rows; each side's median (req/s ratio, CPU ratio) to raw."""
    medians: dict[str, tuple[float, float]] = {}
    out(f"\n{title}; ratio = req/s / {BASELINE}'s in the same round")
    lat_head = f" {'p50 ms':>7} {'p99 ms':>7}" if latency else ""
    out(f"{'side':<10} {H.triple_header('req/s min / median / max', 7)}  "
        f"{H.triple_header('ratio min / median / max', 6)}{lat_head}  "
        f"{'CPU µs/req front':>16} {'consumer':>8} {'redis':>6} {'total':>6}  {'CPU ratio':>9}")
    for side in sides:
        row = results[side]
        ratios = H.per_round_ratios(row["rate"], results[BASELINE]["rate"]) if BASELINE in results else []
        lat = (f" {H.percentile(row['lat_ms'], 0.5):>7.3f} {H.percentile(row['lat_ms'], 0.99):>7.3f}"
               if latency else "")
        # raw's CPU per request / this side's, per round: the ratio at equal CPU, whatever the
        # rest of the machine took
        cpu_ratios = H.per_round_ratios(results[BASELINE]["total"], row["total"]) if BASELINE in results else []
        cpu = (f"{H.median(row['front']):>16.0f} {H.median(row['consumer']):>8.0f} {H.median(row['redis']):>6.0f} "
               f"{H.median(row['total']):>6.0f}  {H.median(cpu_ratios):>9.2f}")
        out(f"{side:<10} {H.triple(row['rate'], ',.0f', 7)}  {H.triple(ratios, '.2f', 6)}{lat}  {cpu}")
        medians[side] = (H.median(ratios), H.median(cpu_ratios))
    others = [o for side in sides for o in results[side]["others"]]
    out("(CPU ratio: raw's CPU µs per request / this side's, per round, median; the rest of the "
        "machine, other processes and interrupts, took a median "
        f"{H.median([o[0] for o in others]):.0%} of CPU {CONSUMER_CPU} and"
        f" {H.median([o[1] for o in others]):.0%} "
        f"of CPU {FRONT_CPU} during these rounds)")
    return medians


def main(args: argparse.Namespace) -> None:
    H.pin_self(FRONT_CPU)  # this process only waits
    out = H.Output()
    out(H.machine(["redis", "pydantic", "faststream"]))
    redis_process = None
    if args.url:
        url = args.url
        out(f"Redis at {url} (given with --url; not started nor pinned by this script)")
    else:
        url, redis_process = start_redis(out)
    out(H.pinning_note({"every consumer": CONSUMER_CPU, "every front": FRONT_CPU, "Redis": REDIS_CPU}))
    sides = []
    for side in [s.strip() for s in args.sides.split(",") if s.strip()]:
        if side == "faststream" and H.version("faststream") is None:
            out(f"faststream: not installed, skipped ({H.INSTALL_HINT})")
            continue
        sides.append(side)
    sizes = [int(s) for s in args.sizes.split(",")]
    prefixes = {s: f"bdbench:{secrets.token_hex(3)}:{s}" for s in sides}
    out(f"{args.rounds} rounds per row, {H.order_note(args.seed)}; bollydog transport options at their "
        f"defaults; {args.inflight} in flight for the concurrent rows")
    consumers: dict[str, Child] = {}
    fronts: dict[str, Child] = {}
    p50_bollydog = p99_bollydog = p50_raw = None
    flight_ratios: tuple[float, float] | None = None
    try:
        for side in sides:
            consumers[side] = Child("consumer", side, url, prefixes[side], CONSUMER_CPU)
            consumers[side].ready()
            fronts[side] = Child("front", side, url, prefixes[side], FRONT_CPU)
            fronts[side].ready()
        redis_pid = redis_process.pid if redis_process else None
        for size in sizes:
            flight_n, seq_n = counts(size, args.messages, args.sequential)
            seq = measure(sides, fronts, consumers, redis_pid,
                          {"mode": "seq", "n": seq_n, "inflight": 1, "size": size}, args)
            report(f"payload {size_name(size)}, sequential (1 in flight), {seq_n:,} requests per round",
                   sides, seq, out, latency=True)
            if size == 100 and "bollydog" in seq:
                p50_bollydog = H.percentile(seq["bollydog"]["lat_ms"], 0.5)
                p99_bollydog = H.percentile(seq["bollydog"]["lat_ms"], 0.99)
                if BASELINE in seq:
                    p50_raw = H.percentile(seq[BASELINE]["lat_ms"], 0.5)
            flight = measure(sides, fronts, consumers, redis_pid,
                             {"mode": "flight", "n": flight_n, "inflight": args.inflight, "size": size}, args)
            ratios = report(f"payload {size_name(size)}, {args.inflight} in flight, {flight_n:,} requests per round",
                            sides, flight, out, latency=False)
            if size == 100 and "bollydog" in ratios and BASELINE in flight:
                flight_ratios = ratios["bollydog"]
    finally:
        for child_process in [*fronts.values(), *consumers.values()]:
            child_process.close()
        import redis

        client = redis.Redis.from_url(url)
        for prefix in prefixes.values():
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        client.close()
        if redis_process is not None:
            H.stop(redis_process)
    if flight_ratios is not None:
        by_rate, by_cpu = flight_ratios
        met = by_rate >= RATIO_TARGET and by_cpu >= RATIO_TARGET
        out(f"\nTargets (bollydog, 100 B): {args.inflight} in flight >= {RATIO_TARGET} of raw by req/s and at equal "
            f"CPU: {by_rate:.2f} and {by_cpu:.2f} -> {'met' if met else 'NOT met'}")
    if p50_bollydog is not None and p50_raw is not None:
        out(f"sequential p50 within {P50_MARGIN} ms of raw's: {p50_bollydog:.3f} against {p50_raw:.3f} ms -> "
            f"{'met' if p50_bollydog <= p50_raw + P50_MARGIN else 'NOT met'}")
    if p50_bollydog is not None:
        out(f"Targets (bollydog, 100 B, sequential): p50 <= {P50_TARGET} ms: {p50_bollydog:.3f} -> "
            f"{'met' if p50_bollydog <= P50_TARGET else 'NOT met'}; p99 <= {P99_TARGET} ms: {p99_bollydog:.3f} -> "
            f"{'met' if p99_bollydog <= P99_TARGET else 'NOT met'}")
    if args.write_docs:
        H.write_docs("Distribute", INTRO, out)


INTRO = """\
Request/reply over Redis Streams: a command `{a, data}` answered with `a + len(data)`, by
bollydog (front and consumer processes built by `bollydog.bootstrap.build` from one config with
a `distribute` section, every transport option at its default, `await hub.execute(...)`), by a
hand-written redis-py request/reply (per request: `XADD` of `{id, reply_to, payload}`; the
consumer `XREADGROUP COUNT 32`, then one pipeline per batch with the reply `XADD`, `XACK` and
`XDEL`; one `XREAD` reader of the replies at the front) and by FastStream's Redis
`broker.request` to a stream subscriber. Every side: the same two processes (consumer on CPU 0,
front on CPU 1, the script's own Redis on CPU 1), the same Redis, the same number in flight, the
same driver timing it. "CPU µs/req" is each process's CPU time per request: where the budget
goes; "CPU ratio" compares the total per request (raw's / the side's), which does not depend on
what the rest of the machine took of either CPU (the req/s ratio does: raw is bound by CPU 1,
front and Redis, bollydog by CPU 0, its consumer)."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an existing Redis (default: start a throwaway one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5000, help="requests per in-flight round")
    parser.add_argument("--sequential", type=int, default=1000, help="requests per sequential round")
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--sizes", default="100", help="payload bytes, comma-separated (e.g. 100,10000,1000000)")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--role", choices=["front", "consumer"], help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role:
        child(arguments.role, arguments.side, arguments.url, arguments.prefix)
    else:
        main(arguments)

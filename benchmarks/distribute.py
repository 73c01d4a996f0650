"""Distribution throughput and latency: commands through Redis Streams vs the raw redis-py ceiling.

    eval "$(bash .ci/start-redis.sh)"
    python benchmarks/distribute.py [--url URL] [--messages 20000] [--sequential 2000] [--inflight 64]
                                    [--consumer-concurrency 16] [--raw-producers 1] [--raw-pipeline 64]

Measured in one run, against the same Redis:

- strict raw ceiling (the ratios are against it): redis-py alone moves the same envelopes:
  ``--raw-producers`` producers each pipelining ``--raw-pipeline`` (64) XADDs per round trip, one
  consumer loop ``XREADGROUP COUNT 256 BLOCK`` + ``XACK`` (one pipeline per batch). One-way: no
  reply, no handler, no validation.
- per-message raw figure (the former ceiling, printed for reference): ``--inflight`` concurrent
  XADDs, one round trip each, consumer ``XREADGROUP COUNT 64`` + pipelined XACK.
- bollydog, end to end: a front hub here sends Commands (``--inflight`` in flight) and awaits each
  reply; consumer *processes* (1, then 2) run a hub hosting the domain. Each command: envelope
  encode, XADD, XREADGROUP, decode + pydantic validation, hub dispatch through its middleware,
  reply XADD + XACK + XDEL, reply XREAD, future resolved. Both sides coalesce their writes: what
  concurrent tasks write in one event-loop iteration goes in one pipeline.
- the same with a handler that awaits 5 ms (two consumers should be faster than one): each
  consumer runs at most ``--consumer-concurrency`` handlers at once, so one consumer tops out at
  about concurrency / 5 ms and a second one adds its own share;
- sequential request/reply latency (one command at a time): p50/p99.

Targets: end-to-end >= 0.5 x strict raw ceiling; two consumers faster than one for the 5 ms handler;
sequential p50 <= 1 ms, p99 <= 2.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bollydog.models.base import Command  # noqa: E402


class Echo(Command):
    domain = "bench"
    a: int
    b: int


class Sleep5(Command):
    domain = "bench"
    n: int


async def echo(command: Echo) -> int:
    return command.a + command.b


async def sleep5(command: Sleep5) -> int:
    await asyncio.sleep(0.005)
    return command.n


def transport(url: str, prefix: str, **options):
    from bollydog.transport.redis import RedisTransport

    return RedisTransport(url, prefix=prefix, **options)


# -- consumer process -----------------------------------------------------------------------------


async def consume(url: str, prefix: str, concurrency: int) -> None:
    from bollydog.cli.runner import serve
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    app = AppService(domain="bench")
    hub = HubService([app], transport=transport(url, prefix, concurrency=concurrency, batch=64),
                     concurrency=concurrency * 2, queue_max_size=concurrency * 4)
    hub.register(echo, sleep5, app=app)
    await serve(hub)


def start_consumers(url: str, prefix: str, count: int, concurrency: int) -> list[subprocess.Popen]:
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING"}
    return [
        subprocess.Popen(
            [sys.executable, __file__, "--consume", "--url", url, "--prefix", prefix,
             "--inflight", str(concurrency)],
            env=env, cwd=ROOT,
        )
        for _ in range(count)
    ]


async def wait_consumers(raw, prefix: str, count: int) -> None:
    stream = f"{prefix}:stream:bench:normal"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if len(await raw.xinfo_consumers(stream, "bench")) >= count:
                return
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("consumer processes did not start")


def stop_consumers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- measurements ---------------------------------------------------------------------------------


async def raw_ceiling(url: str, prefix: str, messages: int, producers: int, per_round_trip: int,
                      read_count: int) -> float:
    """redis-py alone, one-way: ``producers`` tasks each sending ``per_round_trip`` XADDs per
    round trip (a pipeline when > 1), one consumer ``XREADGROUP COUNT read_count`` acking each
    batch in one pipeline. The same envelopes the transport sends; no reply, no handler."""
    import redis.asyncio as aioredis

    from bollydog.transport import wire

    client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=producers + 8)
    stream = f"{prefix}:raw"
    await client.xgroup_create(stream, "raw", id="$", mkstream=True)
    envelopes = [wire.encode(Echo(a=i, b=i), "bench.echo", reply_to=f"{prefix}:reply:x") for i in range(200)]
    done = asyncio.Event()
    received = 0

    async def consumer() -> None:
        nonlocal received
        reader = aioredis.Redis.from_url(url, decode_responses=True, single_connection_client=True)
        while received < messages:
            response = await reader.xreadgroup("raw", "c", {stream: ">"}, count=read_count, block=1000)
            for _, entries in response or ():
                async with client.pipeline(transaction=False) as pipe:
                    for entry_id, fields in entries:
                        json.loads(fields["payload"])  # the consumer looks at what it received
                        pipe.xack(stream, "raw", entry_id)
                    await pipe.execute()
                received += len(entries)
        await reader.aclose()
        done.set()

    async def producer(worker: int) -> None:
        step = producers * per_round_trip
        for first in range(worker * per_round_trip, messages, step):
            last = min(first + per_round_trip, messages)
            if per_round_trip == 1:
                await client.xadd(stream, envelopes[first % 200])
                continue
            async with client.pipeline(transaction=False) as pipe:
                for i in range(first, last):
                    pipe.xadd(stream, envelopes[i % 200])
                await pipe.execute()

    started = time.perf_counter()
    task = asyncio.create_task(consumer())
    await asyncio.gather(*(producer(w) for w in range(producers)))
    await done.wait()
    elapsed = time.perf_counter() - started
    await task
    await client.delete(stream)
    await client.aclose()
    return messages / elapsed


async def end_to_end(hub, make, messages: int, inflight: int) -> float:
    async def worker(offset: int) -> None:
        for i in range(offset, messages, inflight):
            await hub.execute(make(i))

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(inflight)))
    return messages / (time.perf_counter() - started)


async def sequential(hub, count: int) -> tuple[float, float]:
    latencies = []
    for i in range(count):
        message = Echo(a=i, b=1)
        started = time.perf_counter()
        await hub.execute(message)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


async def main(args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis

    from bollydog.service.app import HubService

    prefix = f"bdbench:{secrets.token_hex(3)}"
    raw = aioredis.Redis.from_url(args.url, decode_responses=True)
    rows: list[tuple[str, str]] = []
    try:
        ceiling = statistics.median([
            await raw_ceiling(args.url, prefix, args.messages, args.raw_producers, args.raw_pipeline, 256)
            for _ in range(3)
        ])
        per_message = statistics.median([
            await raw_ceiling(args.url, prefix, args.messages, args.inflight, 1, 64) for _ in range(3)
        ])
        rows.append((f"strict raw ceiling: {args.raw_producers} producer(s) pipelining {args.raw_pipeline} XADDs "
                     "per round trip, XREADGROUP COUNT 256 + pipelined XACK, one-way", f"{ceiling:,.0f} msg/s"))
        rows.append((f"per-message raw figure (old ceiling): {args.inflight} concurrent XADDs, one round trip "
                     "each, XREADGROUP COUNT 64 + pipelined XACK, one-way",
                     f"{per_message:,.0f} msg/s ({per_message / ceiling:.2f} of strict)"))
        results: dict[str, float] = {}
        for consumers in (1, 2):
            procs = start_consumers(args.url, prefix, consumers, args.consumer_concurrency)
            try:
                await wait_consumers(raw, prefix, consumers)
                front_transport = transport(args.url, prefix, max_connections=args.inflight + 8)
                front_transport.add_remote("bench", [Echo, Sleep5])
                hub = HubService(transport=front_transport, concurrency=args.inflight * 2)
                async with hub:
                    await end_to_end(hub, lambda i: Echo(a=i, b=i), 500, args.inflight)  # warm-up
                    rate = statistics.median([
                        await end_to_end(hub, lambda i: Echo(a=i, b=i), args.messages, args.inflight)
                        for _ in range(3)
                    ])
                    results[f"echo{consumers}"] = rate
                    rows.append((f"bollydog request/reply, {consumers} consumer process(es), no-op handler",
                                 f"{rate:,.0f} cmd/s ({rate / ceiling:.2f} of strict raw, "
                                 f"{rate / per_message:.2f} of per-message raw)"))
                    slow_count = max(2000, args.messages // 5)
                    rate = await end_to_end(hub, lambda i: Sleep5(n=i), slow_count, args.inflight * 2)
                    results[f"sleep{consumers}"] = rate
                    rows.append((f"bollydog, {consumers} consumer process(es), handler awaits 5 ms "
                                 f"({args.inflight * 2} in flight)", f"{rate:,.0f} cmd/s"))
                    if consumers == 1:
                        p50, p99 = await sequential(hub, args.sequential)
                        results["p50"], results["p99"] = p50, p99
                        rows.append(("sequential request/reply latency, 1 consumer", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"))
            finally:
                stop_consumers(procs)
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
    print(f"\nDistribute benchmark ({args.messages} messages, {args.inflight} in flight, "
          f"{args.consumer_concurrency} handlers per consumer, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    best = max(results["echo1"], results["echo2"])
    print("\nTargets:")
    print(f"- end-to-end >= 0.5 x strict raw ceiling: {best / ceiling:.2f} -> "
          f"{'met' if best >= 0.5 * ceiling else 'NOT met'} (per-message raw: {best / per_message:.2f})")
    print(f"- two consumers faster than one (5 ms handler): {results['sleep2']:,.0f} vs {results['sleep1']:,.0f} -> "
          f"{'met' if results['sleep2'] > results['sleep1'] else 'NOT met'}")
    print(f"- sequential p50 <= 1 ms: {results['p50']:.3f} -> {'met' if results['p50'] <= 1 else 'NOT met'}")
    print(f"- sequential p99 <= 2.5 ms: {results['p99']:.3f} -> {'met' if results['p99'] <= 2.5 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("BOLLYDOG_TEST_REDIS_URL", "redis://127.0.0.1:56379/0"))
    parser.add_argument("--prefix", default=None)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--raw-producers", type=int, default=1,
                        help="producer tasks of the strict raw ceiling (each pipelines --raw-pipeline XADDs)")
    parser.add_argument("--raw-pipeline", type=int, default=64, help="XADDs per round trip in the strict raw ceiling")
    parser.add_argument("--consumer-concurrency", type=int, default=16,
                        help="handlers in flight per consumer process (the 5 ms case is bound by it)")
    parser.add_argument("--consume", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.consume:
        import logging

        logging.basicConfig(level=logging.WARNING)
        asyncio.run(consume(arguments.url, arguments.prefix, arguments.inflight))
    else:
        asyncio.run(main(arguments))

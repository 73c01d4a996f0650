"""Dispatch throughput against a raw baseline measured in the same run.

    python benchmarks/dispatch.py [--sequential 200000] [--concurrent 10000]

Raw baseline: build a plain pydantic model with the same two fields and ``await handler(cmd)``.
Measured: ``await hub.execute(cmd)`` and ``put_message`` + ``await cmd.state``, each for N
sequential messages and for N concurrent ones. Each path runs in rounds alternating with rounds
of the raw baseline, so that both see the same machine load; the ratio printed is the median of
the per-round ratios (rates are medians too). Memory per queued message: tracemalloc over
messages waiting in the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc

from pydantic import BaseModel

from bollydog.models.base import Command
from bollydog.service.app import HubService


class RawAdd(BaseModel):
    a: int
    b: int


class Add(Command):
    a: int
    b: int


async def raw_handler(command: RawAdd) -> int:
    return command.a + command.b


async def add(command: Add) -> int:
    return command.a + command.b


class Block(Command):
    gate: asyncio.Event


async def block(command: Block) -> None:
    await command.gate.wait()


async def raw_sequential(n: int) -> None:
    for i in range(n):
        await raw_handler(RawAdd(a=i, b=1))


async def execute_sequential(hub: HubService, n: int) -> None:
    for i in range(n):
        await hub.execute(Add(a=i, b=1))


async def queued_sequential(hub: HubService, n: int) -> None:
    for i in range(n):
        message = await hub.put_message(Add(a=i, b=1))
        await message.state


async def execute_concurrent(hub: HubService, n: int) -> None:
    await asyncio.gather(*(hub.execute(Add(a=i, b=1)) for i in range(n)))


async def queued_concurrent(hub: HubService, n: int) -> None:
    messages = [await hub.put_message(Add(a=i, b=1)) for i in range(n)]
    await asyncio.gather(*(m.state for m in messages))


async def timed(run, n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    await run(n)
    return n / (time.perf_counter() - started)


async def against_raw(run, n: int, rounds: int) -> tuple[float, float, float]:
    """``(rate, raw rate, ratio)``: medians over ``rounds`` alternating rounds of n/rounds."""
    per_round = max(n // rounds, 1)
    rates, raws, ratios = [], [], []
    for _ in range(rounds):
        raw = await timed(raw_sequential, per_round)
        measured = await timed(run, per_round)
        rates.append(measured)
        raws.append(raw)
        ratios.append(measured / raw)
    return statistics.median(rates), statistics.median(raws), statistics.median(ratios)


async def queued_bytes_per_message(n: int) -> float:
    hub = HubService(queue_max_size=n + 1, concurrency=1)
    hub.register(add)
    async with hub:
        blocker = asyncio.Event()
        hub.register(block)
        first = await hub.put_message(Block(gate=blocker))
        await asyncio.sleep(0.01)  # the single slot is now busy: the rest stays queued
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        messages = [await hub.put_message(Add(a=i, b=1)) for i in range(n)]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        blocker.set()
        await first.state
        await asyncio.gather(*(m.state for m in messages))
    return size / n


async def main(sequential: int, concurrent: int, rounds: int) -> None:
    hub = HubService(queue_max_size=max(concurrent, 1000) + 1, concurrency=1000)
    hub.register(add)
    async with hub:
        await execute_sequential(hub, 2000)  # warm-up
        await raw_sequential(2000)
        paths = {
            "execute, sequential": (lambda n: execute_sequential(hub, n), sequential, rounds),
            "put_message+state, sequential": (lambda n: queued_sequential(hub, n), sequential // 4, rounds),
            # One round is one burst of n concurrent messages.
            "execute, concurrent": (lambda n: execute_concurrent(hub, n), concurrent * 3, 3),
            "put_message+state, concurrent": (lambda n: queued_concurrent(hub, n), concurrent * 3, 3),
        }
        results = {name: await against_raw(run, n, r) for name, (run, n, r) in paths.items()}
    per_message = statistics.median([await queued_bytes_per_message(2000) for _ in range(3)])
    print(f"{'path':<32}{'msg/s':>10}{'raw msg/s':>12}{'ratio to raw':>14}")
    for name, (value, raw, ratio) in results.items():
        print(f"{name:<32}{value:>10,.0f}{raw:>12,.0f}{ratio:>14.3f}")
    print(f"memory per queued message: {per_message:,.0f} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200_000)
    parser.add_argument("--concurrent", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.sequential, args.concurrent, args.rounds))

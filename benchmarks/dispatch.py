"""Dispatch throughput against a raw baseline measured in the same run.

    python benchmarks/dispatch.py [--sequential 200000] [--concurrent 10000] [--rounds 10]
                                  [--growth 1000000] [--cpu 0] [--write-docs]

Raw baseline: build a plain pydantic model with the same two fields and ``await handler(cmd)``.
Measured: ``await hub.execute(cmd)`` and ``put_message`` + ``await cmd.state``, each for N
sequential messages and for N concurrent ones. Both sides run in this one process, pinned to
one CPU (``--cpu``, default 0), on the same asyncio loop. Each path runs in rounds alternating
with rounds of the raw baseline (raw, path, raw, path, ...), so that both see the same machine
load; rates are printed as min / median / max over the rounds and the ratio as min / median /
max of the per-round ratios (path / raw of the same round). Memory per queued message:
tracemalloc over messages waiting in the queue. ``--growth N``: RSS before and after N more
sequential ``execute`` calls (after a warm-up), to show that nothing accumulates.

Scaling: ``execute`` with 1, 10, 100 and 1000 messages in flight (one ``gather`` of k at a time)
against the raw handler's coroutines gathered the same way.

Targets: ``execute`` sequential >= 0.25 of raw, ``execute`` + ``await state`` >= 0.22,
``put_message`` + ``state`` sequential >= 0.10 (medians of the per-round ratios); at most 800
bytes per queued message; no RSS growth over ``--growth`` executes (at most a byte each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not this folder on sys.path (its http.py would shadow the standard library's); the repository
# root instead: bollydog from this checkout and ``benchmarks._harness``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402

from benchmarks import _harness as H  # noqa: E402
from bollydog.models.base import Command  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402

TARGETS = {"execute, sequential": 0.25, "execute+state, sequential": 0.22, "put_message+state, sequential": 0.10}
#: At most this many bytes per queued message; at most this RSS growth per execute over --growth.
MEMORY_TARGET = 800
GROWTH_TARGET = 1.0
#: Messages in flight at once for the scaling rows (one ``gather`` of k at a time, both sides).
IN_FLIGHT = (1, 10, 100, 1000)


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


async def execute_state_sequential(hub: HubService, n: int) -> None:
    for i in range(n):
        message = Add(a=i, b=1)
        await hub.execute(message)
        await message.state


async def raw_in_flight(n: int, k: int) -> None:
    for start in range(0, n, k):
        await asyncio.gather(*(raw_handler(RawAdd(a=i, b=1)) for i in range(start, start + k)))


async def execute_in_flight(hub: HubService, n: int, k: int) -> None:
    for start in range(0, n, k):
        await asyncio.gather(*(hub.execute(Add(a=i, b=1)) for i in range(start, start + k)))


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


async def against_raw(run, n: int, rounds: int, raw_run=raw_sequential) -> tuple[list[float], list[float], list[float]]:
    """Per-round ``(rates, raw rates, ratios)`` over ``rounds`` alternating rounds of n/rounds."""
    per_round = max(n // rounds, 1)
    rates, raws, ratios = [], [], []
    for _ in range(rounds):
        raw = await timed(raw_run, per_round)
        measured = await timed(run, per_round)
        rates.append(measured)
        raws.append(raw)
        ratios.append(measured / raw)
    return rates, raws, ratios


async def breakdown(hub: HubService, n: int, rounds: int) -> list[tuple[str, float]]:
    """Microseconds per message of each step of ``execute``, innermost first (min over rounds):
    each row runs one more layer than the row before, on messages built beforehand."""
    from bollydog.context import current_session
    from bollydog.models.base import Session

    handler, pipeline = hub.dispatcher.route(Add)
    invoke = hub.dispatcher.invoke

    async def as_session(run):
        token = current_session.set(Session.anonymous())
        try:
            await run()
        finally:
            current_session.reset(token)

    steps = {
        "raw: build the plain model and await the handler": None,
        "build the Command (pydantic validation + framework fields)": None,
        "await the handler function itself": lambda m: add(m),
        "+ Dispatcher.invoke (context frame), a session already set": lambda m: invoke(m, handler),
        "+ the anonymous session the hub makes when none is set": lambda m: invoke(m, handler),
        "+ the middleware chain (retry pass-through, deadline)": lambda m: pipeline(m, handler),
        "+ hub.execute (admission, shutdown tracking, result slot)": lambda m: hub.execute(m),
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, step in steps.items():
            gc.collect()
            if step is None:
                started = time.perf_counter()
                if label.startswith("raw"):
                    await raw_sequential(n)
                else:
                    for i in range(n):
                        Add(a=i, b=1)
            else:
                messages = [Add(a=i, b=1) for i in range(n)]

                async def run(step=step, messages=messages):
                    for message in messages:
                        await step(message)

                started = time.perf_counter()
                if "already set" in label:
                    await as_session(run)
                else:
                    await run()
            elapsed = (time.perf_counter() - started) / n * 1e6
            best[label] = min(best.get(label, elapsed), elapsed)
    return list(best.items())


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


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parts_of_queued() -> str:
    """What one queued ``Add`` is made of: the framework's fixed part, then the rest."""
    message = Add(a=1000, b=1)
    values = message.__dict__
    parts = {
        "object": sys.getsizeof(message),
        "__dict__ (12 fields)": sys.getsizeof(values),
        "fields set": sys.getsizeof(message.__pydantic_fields_set__),
        "ids (iid, trace_id, span_id)": sum(sys.getsizeof(values[k]) for k in ("iid", "trace_id", "span_id")),
        "created_time": sys.getsizeof(values["created_time"]),
        "queue entry (tuple, sequence number, context copy)": sys.getsizeof((0, 0, None, None)) + sys.getsizeof(10**6)
        + sys.getsizeof(contextvars.copy_context()),
    }
    return ", ".join(f"{name} {size:,}" for name, size in parts.items())


async def growth(n: int, out: H.Output) -> float:
    """RSS around ``n`` sequential executes on one hub, after a warm-up of n/10; returns the
    growth in bytes per execute."""
    hub = HubService()
    hub.register(add)
    async with hub:
        await execute_sequential(hub, max(n // 10, 1000))
        gc.collect()
        before = H.rss_bytes()
        started = time.perf_counter()
        await execute_sequential(hub, n)
        elapsed = time.perf_counter() - started
        gc.collect()
        after = H.rss_bytes()
    out(f"growth: RSS {before / 2**20:,.1f} MiB before and {after / 2**20:,.1f} MiB after {n:,} sequential "
        f"executes ({n / elapsed:,.0f} msg/s): {(after - before) / 2**10:+,.0f} KiB, "
        f"{(after - before) / n:+.3f} bytes per execute")
    return (after - before) / n


async def main(args) -> None:
    out = H.Output()
    H.pin_self(args.cpu)
    out(H.machine(["pydantic", "pydantic-core"]))
    out(f"{H.pinning_note({'this process (both sides)': args.cpu})}; asyncio loop; "
        f"{args.rounds} alternating rounds (raw, path, raw, path, ...) per sequential path, 3 per concurrent path")
    sequential, concurrent, rounds = args.sequential, args.concurrent, args.rounds
    hub = HubService(queue_max_size=max(concurrent, 1000) + 1, concurrency=1000)
    hub.register(add)
    async with hub:
        await execute_sequential(hub, 2000)  # warm-up
        await raw_sequential(2000)
        paths = {
            "execute, sequential": (lambda n: execute_sequential(hub, n), sequential, rounds),
            "execute+state, sequential": (lambda n: execute_state_sequential(hub, n), sequential, rounds),
            "put_message+state, sequential": (lambda n: queued_sequential(hub, n), sequential // 4, rounds),
            # One round is one burst of n concurrent messages.
            "execute, concurrent": (lambda n: execute_concurrent(hub, n), concurrent * 3, 3),
            "put_message+state, concurrent": (lambda n: queued_concurrent(hub, n), concurrent * 3, 3),
        }
        results = {name: await against_raw(run, n, r) for name, (run, n, r) in paths.items()}
        in_flight = {
            k: await against_raw(
                lambda n, k=k: execute_in_flight(hub, n, k), sequential // 2, rounds,
                lambda n, k=k: raw_in_flight(n, k),
            )
            for k in IN_FLIGHT
        }
        steps = await breakdown(hub, 20_000, 5)
    per_message = statistics.median([await queued_bytes_per_message(2000) for _ in range(3)])
    out(f"{'path':<31} {H.triple_header('msg/s min / median / max', 9)}  "
        f"{H.triple_header('raw msg/s min / median / max', 9)}  {H.triple_header('ratio min / median / max', 6)}")
    for name, (rates, raws, ratios) in results.items():
        out(f"{name:<31} {H.triple(rates, ',.0f', 9)}  {H.triple(raws, ',.0f', 9)}  {H.triple(ratios, '.3f', 6)}")
    out(f"execute with k in flight (one gather of k at a time; raw: its handler coroutines gathered the same way), "
        f"{sequential // 2:,} messages in {rounds} alternating rounds:")
    for k, (rates, raws, ratios) in in_flight.items():
        out(f"  {k:>4} in flight                  {H.triple(rates, ',.0f', 9)}  {H.triple(raws, ',.0f', 9)}  "
            f"{H.triple(ratios, '.3f', 6)}")
    out(f"memory per queued message: {per_message:,.0f} bytes; its parts, in bytes: {parts_of_queued()}")
    out("where execute's time goes, us per message (min of 5 rounds of 20,000; each row adds one layer):")
    for label, micros in steps:
        out(f"  {label:<62} {micros:6.2f}")
    growth_per_execute = await growth(args.growth, out) if args.growth else None
    out("Targets (median of per-round ratios):")
    for name, target in TARGETS.items():
        ratio = statistics.median(results[name][2])
        out(f"- {name} >= {target:.2f} of raw: {ratio:.4f} -> {met(ratio >= target)}")
    out(f"- memory per queued message <= {MEMORY_TARGET} bytes: {per_message:,.0f} -> {met(per_message <= MEMORY_TARGET)}")
    if growth_per_execute is not None:
        out(f"- no growth over {args.growth:,} executes (<= {GROWTH_TARGET:g} byte of RSS per execute): "
            f"{growth_per_execute:+.3f} -> {met(growth_per_execute <= GROWTH_TARGET)}")
    if args.write_docs:
        H.write_docs("Dispatch", INTRO, out)


INTRO = """In one process: `await hub.execute(cmd)`, `execute` then `await cmd.state`, and
`put_message` + `await cmd.state` for a trivial command (`a + b`), against a raw baseline (a
plain pydantic model with the same two int fields, its handler awaited directly), rounds
alternating raw / path, the process pinned to one CPU. The concurrent rows pay one asyncio
task per message (`gather` for `execute`, the hub's own task for the queue) against the
sequential raw path; the in-flight rows gather k messages at a time on both sides, so the raw
side pays the same tasks. A queued message adds a task and a loop turn of asyncio's
pure-Python loop per message.

The block after the memory figure takes `execute` apart, one layer per row, on messages built
beforehand: what stands between it and the 0.25 target is building the message (pydantic
validates the two fields and fills ten framework fields; a model hook draws the ids and
inherits trace, session and priority: the second row against the plain model of the first)
and the layers (context frame, the hub's anonymous session, retry and deadline layers,
shutdown tracking and the result slot: the last row against the third), against the whole raw
path of the first row. The memory line is followed by what one queued message is made of
(`sys.getsizeof` of its parts)."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=200_000)
    parser.add_argument("--concurrent", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--growth", type=int, default=0, metavar="N",
                        help="also measure RSS before/after N sequential executes (e.g. 1000000)")
    parser.add_argument("--cpu", type=int, default=H.SERVER_CPU, help="the CPU this process is pinned to")
    parser.add_argument("--write-docs", action="store_true", help="replace the Dispatch section of docs/benchmarks.md")
    asyncio.run(main(parser.parse_args()))

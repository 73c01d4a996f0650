"""Cost of telemetry on ``await hub.execute(cmd)`` for a trivial command, measured in one run.

    python benchmarks/telemetry.py [--messages 100000] [--rounds 10]

Four hubs, each with the same handler, run in interleaved rounds so that they see the same
machine load; rates and ratios are medians over the rounds:

- off: no telemetry configured (the default: no plugin, no layer);
- plugin, no exporters: a TelemetryPlugin whose exporters are all ``none`` (adds no layer);
- traces: spans to the in-memory exporter (SimpleSpanProcessor, cleared every round);
- traces+metrics: the same plus the "bollydog" meter to an in-memory reader.

Ratio = rate / rate of "off" in the same round. The last line is the SDK's own floor: a bare
``start_span`` + ``end`` with the same attributes into the same kind of exporter, no bollydog.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import timeit

from bollydog.models.base import Command
from bollydog.service.app import HubService
from bollydog.telemetry import TelemetryPlugin


class Add(Command):
    a: int
    b: int


async def add(command: Add) -> int:
    return command.a + command.b


async def run(hub: HubService, n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for i in range(n):
        await hub.execute(Add(a=i, b=1))
    return n / (time.perf_counter() - started)


async def main(messages: int, rounds: int) -> None:
    variants: dict[str, tuple[HubService, TelemetryPlugin | None]] = {}
    for name, options in {
        "off": None,
        "plugin, no exporters": {},
        "traces (memory)": {"traces_exporter": "memory"},
        "traces+metrics (memory)": {"traces_exporter": "memory", "metrics_exporter": "memory"},
    }.items():
        hub = HubService()
        hub.register(add)
        plugin = None
        if options is not None:
            plugin = TelemetryPlugin(install_global=False, **{"traces_exporter": "none", "metrics_exporter": "none",
                                                             "logs_exporter": "none", **options}).install(hub)
        variants[name] = (hub, plugin)
    for hub, _ in variants.values():
        await hub.start()
    try:
        per_round = max(messages // rounds, 1)
        for hub, _ in variants.values():
            await run(hub, 2000)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in variants}
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            baseline = None
            for name, (hub, plugin) in variants.items():
                rate = await run(hub, per_round)
                if plugin is not None and plugin.span_exporter is not None:
                    plugin.span_exporter.clear()
                baseline = rate if name == "off" else baseline
                rates[name].append(rate)
                ratios[name].append(rate / baseline)
    finally:
        for hub, _ in variants.values():
            await hub.stop()
    print(f"{'variant':<28}{'msg/s':>10}{'ratio to off':>14}{'us/msg added':>14}")
    off = statistics.median(rates["off"])
    for name in variants:
        rate = statistics.median(rates[name])
        added = (1 / rate - 1 / off) * 1e6
        print(f"{name:<28}{rate:>10,.0f}{statistics.median(ratios[name]):>14.3f}{added:>14.1f}")
    print(f"SDK floor (bare span, same attributes, in-memory exporter): {sdk_floor_us():.1f} us/span")


def sdk_floor_us(n: int = 20_000) -> float:
    from opentelemetry import context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import set_span_in_context

    provider, exporter = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer, root = provider.get_tracer("floor"), context.Context()
    attributes = {
        "messaging.system": "bollydog", "messaging.operation": "process", "messaging.operation.type": "process",
        "messaging.destination.name": "bench", "messaging.message.id": "0" * 31 + "1",
        "bollydog.message.name": "add", "bollydog.handler": "bench.add",
    }

    def one() -> None:
        span = tracer.start_span("bench.add", context=root, attributes=attributes)
        token = context.attach(set_span_in_context(span))
        context.detach(token)
        span.set_attribute("bollydog.outcome", "ok")
        span.end()

    seconds = min(timeit.repeat(one, number=n, repeat=3)) / n
    provider.shutdown()
    return seconds * 1e6


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))

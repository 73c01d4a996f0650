"""Cost of telemetry on ``await hub.execute(cmd)`` for a trivial command, measured in one run.

    python benchmarks/telemetry.py [--messages 100000] [--rounds 10] [--write-docs]

Four hubs, each with the same handler, on one event loop in one process pinned to one CPU, run
in interleaved rounds (the order reversed every other round) so that they see the same machine
load; rates and per-round ratios are printed as min / median / max:

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
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the harness and bollydog from this checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402
from bollydog.models.base import Command  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402
from bollydog.telemetry import TelemetryPlugin  # noqa: E402

INTRO = """
`await hub.execute(cmd)` of a trivial command with telemetry off, a plugin with every exporter
`none`, spans to the in-memory exporter, and spans plus metrics; four hubs on one loop in one
process pinned to one CPU, rounds interleaved (order reversed every other round); ratio = rate
/ the rate of "off" in the same round.
"""


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


async def main(messages: int, rounds: int, out: H.Output) -> None:
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
        for index in range(rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                hub, plugin = variants[name]
                rates[name].append(await run(hub, per_round))
                if plugin is not None and plugin.span_exporter is not None:
                    plugin.span_exporter.clear()
    finally:
        for hub, _ in variants.values():
            await hub.stop()
    out(f"{per_round:,} messages per round and variant, {rounds} rounds")
    out(f"{'variant':<26}{'msg/s min / median / max':>34}{'ratio to off min / median / max':>34}{'us/msg added':>14}")
    off = statistics.median(rates["off"])
    for name in variants:
        r = rates[name]
        ratios = [x / o for x, o in zip(r, rates["off"])]
        added = (1 / statistics.median(r) - 1 / off) * 1e6
        out(f"{name:<26}{min(r):>10,.0f} /{statistics.median(r):>9,.0f} /{max(r):>9,.0f}"
            f"{min(ratios):>14.3f} /{statistics.median(ratios):>6.3f} /{max(ratios):>6.3f}{added:>14.1f}")
    out(f"SDK floor (bare span, same attributes, in-memory exporter): {sdk_floor_us():.1f} us/span")


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
    parser.add_argument("--write-docs", action="store_true", help="replace the telemetry section of docs/benchmarks.md")
    args = parser.parse_args()
    output = H.Output()
    H.pin_self(H.SERVER_CPU)
    output(H.machine(["opentelemetry-sdk", "pydantic"]))
    output(H.pinning_note({"this process (every variant)": H.SERVER_CPU}) + "; asyncio loop")
    asyncio.run(main(args.messages, args.rounds, output))
    if args.write_docs:
        H.write_docs("Telemetry overhead", INTRO, output)

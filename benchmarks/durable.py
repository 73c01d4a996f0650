"""Durable runs: the cost of a durable step over a plain one, and recovery of many runs.

    python benchmarks/durable.py [--rounds 7] [--steps 20] [--runs 1000] [--cpu 0] [--write-docs]

- step overhead: one generator handler yields ``--steps`` Commands that each insert a row, run
  plain and ``@durable`` (same database, same handlers), rounds alternating between the two;
  the overhead per step is (durable - plain) / steps, min / median / max over the rounds. A
  durable step here is a Command of the same app: its step row is written in its own
  transaction, and the run adds a start and a finish write.
- recovery: ``--runs`` runs of three recorded steps each are set back to ``running``; a hub
  starts on the database and the time until every run is done again (replayed from the log,
  nothing dispatched) is measured.

SQLite (aiosqlite, a file in a temporary folder) always; PostgreSQL too when
``BOLLYDOG_TEST_POSTGRES_URL`` is set, in a schema of its own dropped afterwards.
Target: < 1 ms per durable step on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROOT = Path(__file__).resolve().parent.parent
# Not this folder on sys.path (its http.py would shadow the standard library's); the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402
from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol, SqlAlchemyUnitOfWork  # noqa: E402
from bollydog.durable import durable  # noqa: E402
from bollydog.models.base import Command  # noqa: E402
from bollydog.models.service import AppService  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402

TARGET_MS = 1.0
OUT = H.Output()


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_durable_rows"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    payload: Mapped[str] = mapped_column(String(100))


class Insert(Command):
    payload: str


class Plain(Command):
    steps: int


class Durable(Command):
    steps: int


async def insert(command: Insert, protocol: SqlAlchemyProtocol) -> int:
    row = await protocol.add(Row(payload=command.payload))
    return row.id


async def plain(command: Plain) -> Any:
    for i in range(command.steps):
        yield Insert(payload=str(i))
    yield command.steps


@durable
async def durable_run(command: Durable) -> Any:
    for i in range(command.steps):
        yield Insert(payload=str(i))
    yield command.steps


def hub_for(url: str, engine_options: dict[str, Any]) -> HubService:
    unit_of_work = SqlAlchemyUnitOfWork(url, metadata=Base, durable=True, **engine_options)
    app = AppService(domain="bench", protocol=SqlAlchemyProtocol(unit_of_work))
    hub = HubService(apps=[app])
    hub.register(insert, plain, durable_run, app=app)
    return hub


async def step_overhead(url: str, engine_options: dict[str, Any], rounds: int, steps: int) -> list[float]:
    """Per-step overhead in ms, one figure per round."""
    overheads = []
    async with hub_for(url, engine_options) as hub:
        await hub.execute(Plain(steps=steps))  # warm up both paths
        await hub.execute(Durable(steps=steps))
        for round_ in range(rounds):
            timings: dict[str, float] = {}
            for side in (("plain", "durable") if round_ % 2 == 0 else ("durable", "plain")):
                runs = 10
                began = time.perf_counter()
                for _ in range(runs):
                    await hub.execute(Plain(steps=steps) if side == "plain" else Durable(steps=steps))
                timings[side] = (time.perf_counter() - began) / runs
            overheads.append((timings["durable"] - timings["plain"]) / steps * 1000)
            OUT(f"  round {round_ + 1}: plain {timings['plain'] / steps * 1000:.3f} ms/step, "
                f"durable {timings['durable'] / steps * 1000:.3f} ms/step")
    return overheads


async def recovery(url: str, engine_options: dict[str, Any], runs: int) -> float:
    """Seconds until ``runs`` running runs (3 recorded steps each) are done after a start."""
    async with hub_for(url, engine_options) as hub:
        await asyncio.gather(*(hub.execute(Durable(steps=3)) for _ in range(runs)))
    engine = create_async_engine(url, **engine_options)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE bollydog_runs SET status = 'running', outcome = NULL"))
        hub = hub_for(url, engine_options)
        began = time.perf_counter()
        async with hub:
            await hub.drain(600)
        elapsed = time.perf_counter() - began
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM bollydog_runs WHERE status <> 'done'"))).scalar()
        assert left == 0, f"{left} run(s) not done"
        return elapsed
    finally:
        await engine.dispose()


def figures(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


async def bench(name: str, url: str, engine_options: dict[str, Any], args: argparse.Namespace) -> None:
    OUT(f"{name}:")
    overheads = await step_overhead(url, engine_options, args.rounds, args.steps)
    median = statistics.median(overheads)
    OUT(f"  durable step overhead, ms/step (min / median / max): {figures(overheads)}"
        + (f"  (target < {TARGET_MS} ms: {'met' if median < TARGET_MS else 'NOT met'})" if name == "SQLite" else ""))
    seconds = await recovery(url, engine_options, args.runs)
    OUT(f"  recovery of {args.runs} running runs (3 recorded steps each): {seconds:.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cpu", type=int, default=H.SERVER_CPU, help="the CPU this process (both sides) is pinned to")
    parser.add_argument("--write-docs", action="store_true", help="replace the Durable runs section of docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    H.pin_self(args.cpu)
    OUT(H.machine(["sqlalchemy", "aiosqlite", "asyncpg"]))
    OUT(f"{H.pinning_note({'this process (plain and durable sides)': args.cpu})}; asyncio loop; "
        f"{args.rounds} rounds alternating plain / durable (the order reversed every other round)")
    with tempfile.TemporaryDirectory() as folder:
        await bench("SQLite", f"sqlite+aiosqlite:///{folder}/bench.db", {}, args)
    url = os.environ.get("BOLLYDOG_TEST_POSTGRES_URL", "").strip()
    if url:
        schema = f"bench_{secrets.token_hex(4)}"
        admin = create_async_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            await bench("PostgreSQL", url, {"connect_args": {"server_settings": {"search_path": schema}}}, args)
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
    if args.write_docs:
        H.write_docs("Durable runs", INTRO, OUT)


INTRO = """
A generator handler yielding 20 Commands that each insert a row, run plain and `@durable` on
the same database, rounds alternating between the two: the overhead of a durable step is
(durable - plain) / steps (a durable step writes its step row in the child's own transaction;
the run adds a start and a finish write). Recovery: 1,000 runs of three recorded steps set back
to `running`, then the time until a starting hub has them all done again (replayed from the
log, nothing dispatched). SQLite: a file (a commit is a file sync); PostgreSQL: the CI server."""


if __name__ == "__main__":
    asyncio.run(main())

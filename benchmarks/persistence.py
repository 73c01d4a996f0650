"""Persistence throughput: commands through the hub against direct SQLAlchemy, in the same run.

    python benchmarks/persistence.py [--seconds 3] [--slices 15] [--concurrency 1]

Two handlers, each against the same statements run directly on the same engine:

- insert: ``await protocol.add(Row(...))`` in a handler vs ``s = sessionmaker(); s.add(Row(...));
  await s.commit(); await s.close()`` (BEGIN, INSERT, COMMIT either way);
- read: ``await protocol.get(Row, id)`` in a handler vs ``s = sessionmaker(); await s.get(Row, id);
  await s.commit(); await s.close()`` (BEGIN, SELECT, COMMIT either way).

The direct side is the cheapest way to run those statements with an ``AsyncSession`` (the
``async with sessionmaker.begin()`` idiom is slower: it closes the session in a shielded task).

The hub side pays for building the Command, dispatch, the middleware layers and the unit of
work. Each case runs ``--seconds`` per side, in short slices that alternate direct and hub, so
that the machine's drifts hit both sides alike; the ratio printed is the median of the slice
ratios, the rates are totals. SQLite (aiosqlite, a file in a temporary
folder) always; PostgreSQL too when ``BOLLYDOG_TEST_POSTGRES_URL`` is set (``.ci/start-postgres.sh``),
in a schema of its own that is dropped afterwards. Target: hub >= 0.7 x direct.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol, SqlAlchemyUnitOfWork  # noqa: E402
from bollydog.models.base import Command  # noqa: E402
from bollydog.models.service import AppService  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402

TARGET = 0.7


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_rows"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    payload: Mapped[str] = mapped_column(String(100))


class InsertRow(Command):
    payload: str


class ReadRow(Command):
    row_id: int


async def insert_row(command: InsertRow, protocol: SqlAlchemyProtocol) -> int:
    row = await protocol.add(Row(payload=command.payload))
    return row.id


async def read_row(command: ReadRow, protocol: SqlAlchemyProtocol) -> str | None:
    row = await protocol.get(Row, command.row_id)
    return row.payload if row is not None else None


async def rate(operation: Callable[[int], Awaitable[object]], seconds: float, concurrency: int) -> tuple[int, float]:
    """(operations done, seconds taken) running ``operation(i)`` for about ``seconds``."""
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def worker() -> int:
        done = 0
        while loop.time() < deadline:
            await operation(next(counter))
            done += 1
        return done

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
    return total, time.perf_counter() - start


async def compare(direct, via_hub, args: argparse.Namespace) -> tuple[float, float, float]:
    """Direct and hub rates over interleaved slices, and the median of the per-slice ratios.

    Each hub slice runs right after a direct one, so drifts of the machine (other processes,
    the database's own background work) hit both sides of a ratio alike.
    """
    slice_seconds = args.seconds / args.slices
    totals = [0, 0.0, 0, 0.0]
    ratios = []
    for _ in range(args.slices):
        d_ops, d_time = await rate(direct, slice_seconds, args.concurrency)
        h_ops, h_time = await rate(via_hub, slice_seconds, args.concurrency)
        totals[0] += d_ops
        totals[1] += d_time
        totals[2] += h_ops
        totals[3] += h_time
        ratios.append((h_ops / h_time) / (d_ops / d_time))
    return totals[0] / totals[1], totals[2] / totals[3], statistics.median(ratios)


async def bench(label: str, url: str, engine_options: dict, args: argparse.Namespace) -> list[tuple]:
    uow = SqlAlchemyUnitOfWork(url, metadata=Base, **engine_options)
    protocol = SqlAlchemyProtocol(uow)
    app = AppService.create_from(domain="bench", protocol=protocol)
    hub = HubService(apps=[app])
    hub.register(insert_row, read_row, app=app)
    rows: list[tuple] = []
    async with hub:
        sessions = async_sessionmaker(uow.engine, expire_on_commit=False)  # the same engine
        payload = "x" * 40

        async def direct_insert(i: int) -> None:
            session = sessions()
            session.add(Row(payload=payload))
            await session.commit()
            await session.close()

        async def hub_insert(i: int) -> None:
            await hub.execute(InsertRow(payload=payload))

        await hub_insert(0)
        async with sessions() as session:
            count = (await session.execute(text("SELECT count(*) FROM bench_rows"))).scalar_one()
        ids = max(count, 1)

        async def direct_read(i: int) -> None:
            session = sessions()
            await session.get(Row, i % ids + 1)
            await session.commit()
            await session.close()

        async def hub_read(i: int) -> None:
            await hub.execute(ReadRow(row_id=i % ids + 1))

        for case, direct, via_hub in (("insert", direct_insert, hub_insert), ("read", direct_read, hub_read)):
            await direct(0), await via_hub(0)  # warm up
            direct_rate, hub_rate, ratio = await compare(direct, via_hub, args)
            rows.append((label, case, direct_rate, hub_rate, ratio))
            if case == "insert":
                async with sessions() as session:
                    ids = (await session.execute(text("SELECT count(*) FROM bench_rows"))).scalar_one()
        assert uow.engine.pool.checkedout() == 0
    return rows


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per side and case")
    parser.add_argument("--slices", type=int, default=15, help="interleaved direct/hub slices per case")
    parser.add_argument("--concurrency", type=int, default=1, help="commands in flight at once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="bollydog-bench-") as folder:
        results += await bench("sqlite", f"sqlite+aiosqlite:///{folder}/bench.db", {}, args)
    pg_url = os.environ.get("BOLLYDOG_TEST_POSTGRES_URL", "").strip()
    if pg_url:
        schema = f"bd_bench_{secrets.token_hex(4)}"
        admin = create_async_engine(pg_url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            options = {"connect_args": {"server_settings": {"search_path": schema}}}
            results += await bench("postgresql", pg_url, options, args)
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
    else:
        print("(PostgreSQL skipped: set BOLLYDOG_TEST_POSTGRES_URL, e.g. via .ci/start-postgres.sh)")

    print(f"\nconcurrency {args.concurrency}, {args.seconds}s per side in {args.slices} interleaved slices")
    print(f"{'database':<12}{'case':<8}{'direct/s':>12}{'hub/s':>12}{'ratio':>8}  (median of slice ratios)")
    for label, case, direct, via_hub, ratio in results:
        flag = "" if ratio >= TARGET else f"  < {TARGET} target"
        print(f"{label:<12}{case:<8}{direct:>12,.0f}{via_hub:>12,.0f}{ratio:>8.2f}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

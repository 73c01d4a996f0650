"""Durable runs held by one process at a time: leases, takeover, fenced steps, release on stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.durable.lease import is_gone, keeper_of, new_owner
from bollydog.durable.runner import run_stores
from bollydog.durable.store import CANCELLED
from bollydog.errors import RunLeaseLostError
from bollydog.settings import reload_settings
from tests.orchestration.relay_handlers import Relay
from tests.persistence.kits import PostgresSchema

ROOT = Path(__file__).resolve().parents[2]


def relay_config(url: str, **engine_options: Any) -> dict[str, Any]:
    return {
        "relay": {
            "handlers": ["tests.orchestration.relay_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork", "url": url,
                "metadata": "tests.orchestration.relay_handlers.Base", "durable": True, **engine_options,
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        }
    }


def sqlite_url(database: Path) -> str:
    return f"sqlite+aiosqlite:///{database}"


def marks(database: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT step, pid FROM relay_marks ORDER BY id"))


def run_row(database: Path) -> tuple[str, str | None, float]:
    with sqlite3.connect(database) as db:
        ((status, owner, until),) = db.execute("SELECT status, owner, lease_until FROM bollydog_runs")
    return status, owner, until


@pytest.fixture
def lease() -> Iterator[Any]:
    """``lease(seconds)`` sets BOLLYDOG_DURABLE_LEASE for this process and its children."""
    previous = os.environ.get("BOLLYDOG_DURABLE_LEASE")

    def set_lease(seconds: float) -> None:
        os.environ["BOLLYDOG_DURABLE_LEASE"] = str(seconds)
        reload_settings()

    yield set_lease
    if previous is None:
        os.environ.pop("BOLLYDOG_DURABLE_LEASE", None)
    else:
        os.environ["BOLLYDOG_DURABLE_LEASE"] = previous
    reload_settings()


async def until(condition: Any, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def worker(config: Path, log: Path, key: str | None = None, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **env}
    command = [sys.executable, "-m", "tests.orchestration.relay_worker", str(config), *([key] if key else [])]
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="pid namespaces are read from /proc (Linux)")
def test_an_owner_is_gone_when_its_pid_is_dead_or_is_this_process_with_another_nonce() -> None:
    owner = new_owner()
    assert not is_gone(owner)
    host, kernel, pid, _ = owner.split("/")
    assert int(pid) == os.getpid()
    assert is_gone(f"{host}/{kernel}/{pid}/earlier")  # an earlier process that had this pid
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert is_gone(f"{host}/{kernel}/{finished.pid}/n")
    assert not is_gone(f"{host}/{kernel}/1/n")  # pid 1 runs
    assert not is_gone(f"{host}/another-kernel/{finished.pid}/n")  # elsewhere: the lease decides
    assert not is_gone("not an owner")


async def test_a_run_its_process_still_renews_is_not_taken_by_another(tmp_path: Path, lease: Any) -> None:
    lease(0.6)  # the run lasts more than three leases
    database = tmp_path / "relay.db"
    config = relay_config(sqlite_url(database))
    async with build(config, entrypoints=False).hub as first:
        run = await first.put_message(Relay(key="a", steps=4, hold=0.5))
        await until(lambda: len(marks(database)) == 1, what="the first step")
        holder = keeper_of(first, run_stores(first)[0]).owner
        owners = set()
        async with build(config, entrypoints=False).hub:
            while not run.state.done():  # the second process ticks all along
                owners.add(run_row(database)[1])
                await asyncio.sleep(0.05)
            assert run.state.result() == {"key": "a", "steps": 4}
    assert owners == {holder}  # never another, nor nobody, while it ran
    assert [step for step, _ in marks(database)] == [1, 2, 3, 4]
    assert run_row(database) == ("done", None, 0.0)


async def test_a_stopping_process_releases_the_runs_it_cut_and_the_next_one_takes_them(
    tmp_path: Path, lease: Any,
) -> None:
    lease(30)  # far longer than the test: a taken run was released, not left to expire
    database = tmp_path / "relay.db"
    config = relay_config(sqlite_url(database))
    async with build(config, entrypoints=False, hub_options={"shutdown_grace": 0}).hub as first:
        await first.put_message(Relay(key="r", steps=5, hold=0.2))
        await until(lambda: len(marks(database)) == 2, what="two steps")
    assert run_row(database) == ("running", None, 0.0)  # cut, and let go of
    began = time.monotonic()
    async with build(config, entrypoints=False).hub as second:
        await until(lambda: run_row(database)[0] == "done", what="the run resumed")
        assert await second.drain(5)
    assert time.monotonic() - began < 10
    assert [step for step, _ in marks(database)] == [1, 2, 3, 4, 5]


async def test_a_run_set_aside_while_it_runs_commits_no_further_step(tmp_path: Path, lease: Any) -> None:
    lease(30)
    database = tmp_path / "relay.db"
    async with build(relay_config(sqlite_url(database)), entrypoints=False).hub as hub:
        run = await hub.put_message(Relay(key="c", steps=5, hold=0.3))
        await until(lambda: len(marks(database)) == 1, what="the first step")
        await run_stores(hub)[0].finish(run.iid, CANCELLED, None)  # what `bollydog sagas cancel` does
        with pytest.raises(RunLeaseLostError) as lost:
            await asyncio.wait_for(run.state, 10)
        assert lost.value.run_id == run.iid and lost.value.status_code == 409
    assert [step for step, _ in marks(database)] == [1]  # step 2's write was refused; no compensation
    assert run_row(database)[0] == "cancelled"


async def test_a_run_whose_lease_is_lost_between_steps_stops_without_compensating(
    tmp_path: Path, lease: Any,
) -> None:
    lease(0.6)
    database = tmp_path / "relay.db"
    async with build(relay_config(sqlite_url(database)), entrypoints=False).hub as hub:
        run = await hub.put_message(Relay(key="n", steps=3, hold=0, nap=1.0))
        await until(lambda: len(marks(database)) == 1, what="the first step")
        await run_stores(hub)[0].finish(run.iid, CANCELLED, None)  # during the nap: no write comes
        with pytest.raises(RunLeaseLostError, match="it stops here"):
            await asyncio.wait_for(run.state, 10)  # the renewal told it; its next step refused
    assert [step for step, _ in marks(database)] == [1]
    assert run_row(database)[0] == "cancelled"


async def test_a_durable_event_handler_is_refused_with_what_to_do(tmp_path: Path) -> None:
    from bollydog.errors import ConfigError, EventHandlersError
    from tests.orchestration.relay_handlers import Relayed

    database = tmp_path / "relay.db"
    async with build(relay_config(sqlite_url(database)), entrypoints=False).hub as hub:
        with pytest.raises(EventHandlersError) as refused:
            await hub.execute(Relayed(key="e"))
    (error,) = refused.value.exceptions
    assert isinstance(error, ConfigError) and "applies to Command handlers" in str(error)


async def test_a_run_taken_over_too_often_is_parked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOLLYDOG_DURABLE_MAX_TAKEOVERS", "2")
    reload_settings()
    database = tmp_path / "relay.db"
    config = relay_config(sqlite_url(database))
    try:
        async with build(config, entrypoints=False).hub as hub:
            await hub.execute(Relay(key="t", steps=2, hold=0))
        with sqlite3.connect(database) as db:  # left twice by holders that died in it
            db.execute("UPDATE bollydog_runs SET status = 'running', outcome = NULL, takeovers = 2")
            db.execute("DELETE FROM bollydog_steps")
        async with build(config, entrypoints=False).hub as hub:
            assert await hub.drain(5)
        with sqlite3.connect(database) as db:
            ((status, outcome),) = db.execute("SELECT status, outcome FROM bollydog_runs")
        assert status == "parked" and "taken over 2 times without finishing" in outcome
        assert len(marks(database)) == 2  # nothing ran again
    finally:
        monkeypatch.delenv("BOLLYDOG_DURABLE_MAX_TAKEOVERS")
        reload_settings()


async def test_resume_refuses_a_run_a_live_process_is_running(tmp_path: Path, lease: Any) -> None:
    lease(30)
    database = tmp_path / "relay.db"
    config = tmp_path / "relay.json"
    config.write_text(json.dumps(relay_config(sqlite_url(database))))
    async with build(json.loads(config.read_text()), entrypoints=False).hub as hub:
        run = await hub.put_message(Relay(key="l", steps=2, hold=1.5))
        await until(lambda: len(marks(database)) == 1, what="the first step")
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "BOLLYDOG_LOG_LEVEL": "WARNING"}
        resumed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bollydog.cli.main", "sagas", "resume", "--config", str(config),
                             run.iid], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
        )
        assert resumed.returncode == 2 and "is running in" in resumed.stderr, resumed.stderr
        assert await asyncio.wait_for(run.state, 10) == {"key": "l", "steps": 2}


async def test_a_runs_table_made_before_leases_gets_its_columns_and_its_runs_resume(tmp_path: Path) -> None:
    database = tmp_path / "relay.db"
    config = relay_config(sqlite_url(database))
    async with build(config, entrypoints=False).hub as hub:
        await hub.execute(Relay(key="m", steps=4, hold=0))
    with sqlite3.connect(database) as db:  # the table as it was, with a run left in its middle
        db.execute("UPDATE bollydog_runs SET status = 'running', outcome = NULL")
        db.execute("DELETE FROM bollydog_steps WHERE step >= 2")
        db.execute("DELETE FROM relay_marks WHERE step >= 3")
        db.execute("ALTER TABLE bollydog_runs DROP COLUMN owner")
        db.execute("ALTER TABLE bollydog_runs DROP COLUMN lease_until")
    async with build(config, entrypoints=False).hub as hub:
        assert await hub.drain(5)
    assert run_row(database) == ("done", None, 0.0)
    assert [step for step, _ in marks(database)] == [1, 2, 3, 4]


async def test_a_killed_process_run_is_taken_over_without_waiting_for_its_lease(tmp_path: Path, lease: Any) -> None:
    lease(6)
    database = tmp_path / "relay.db"
    config = tmp_path / "relay.json"
    config.write_text(json.dumps(relay_config(sqlite_url(database))))
    async with build(json.loads(config.read_text()), entrypoints=False).hub:
        first = worker(config, tmp_path / "first.log", "k", RELAY_STEPS="5", RELAY_HOLD="0.3")
        try:
            await until(lambda: len(marks(database)) >= 2, what="two steps in the first process")
            os.kill(first.pid, signal.SIGKILL)
            killed = time.monotonic()
            first.wait(10)
            await until(lambda: run_row(database)[0] == "done", what="the run taken over")
            # The owner's process is gone (same machine): taken at the next renewal, not after the lease.
            assert time.monotonic() - killed < 6
        finally:
            stop(first)
    steps = marks(database)
    assert sorted(step for step, _ in steps) == [1, 2, 3, 4, 5]
    assert {pid for step, pid in steps if step >= 4} == {os.getpid()}


async def test_a_paused_process_loses_its_run_to_another_and_commits_nothing_after(
    schema: PostgresSchema, tmp_path: Path, lease: Any,
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    lease(1.0)
    config = relay_config(schema.url, **schema.engine_options())
    config_path = tmp_path / "relay.json"
    config_path.write_text(json.dumps(config))
    engine = create_async_engine(schema.url, **schema.engine_options())

    async def query(sql: str) -> list[Any]:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql))]

    async def steps_written() -> int:
        try:
            return len(await query("SELECT id FROM relay_marks"))
        except Exception:  # the table is not there yet
            return 0

    first = worker(config_path, tmp_path / "first.log", "p", RELAY_STEPS="6", RELAY_HOLD="0.4")
    try:
        assert first.stdout is not None
        assert len(first.stdout.readline().strip()) == 32  # the run's id
        deadline = time.monotonic() + 20
        while await steps_written() < 2:
            assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "first.log").read_text()
            await asyncio.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # alive, but renews nothing: as if cut off
        ((lease_end, owner),) = await query("SELECT lease_until, owner FROM bollydog_runs")
        assert owner.split("/")[2] == str(first.pid)
        async with build(config, entrypoints=False).hub:
            deadline = time.monotonic() + 20
            while (await query("SELECT status FROM bollydog_runs"))[0][0] != "done":
                assert time.monotonic() < deadline, "the run was not taken over"
                await asyncio.sleep(0.05)
            os.kill(first.pid, signal.SIGCONT)  # it wakes up in the middle of a step
            await asyncio.sleep(2.5)  # past its pending write and its next renewal
        rows = await query("SELECT step, pid, at FROM relay_marks ORDER BY id")
        assert sorted(step for step, _, _ in rows) == [1, 2, 3, 4, 5, 6]  # each once: its write was refused
        taken_over = [at for _, pid, at in rows if pid == os.getpid()]
        assert taken_over and min(taken_over) >= lease_end  # it waited for the lease: the process was alive
        ((status, outcome, holder),) = await query("SELECT status, outcome, owner FROM bollydog_runs")
        assert (status, json.loads(outcome), holder) == ("done", {"key": "p", "steps": 6}, None)
        assert first.poll() is None  # it goes on serving
        assert "run ended here: RunLeaseLostError" in (tmp_path / "first.log").read_text()
    finally:
        stop(first)
        await engine.dispose()


async def test_a_run_cut_by_its_deadline_is_resumed_here_once_its_lease_runs_out(tmp_path: Path, lease: Any) -> None:
    from bollydog.errors import HandlerTimeoutError
    from tests.orchestration.saga_handlers import Napper
    from tests.orchestration.test_durable import config as saga_config
    from tests.orchestration.test_durable import runs

    lease(0.6)
    database = tmp_path / "saga.db"
    async with build(saga_config(database), entrypoints=False).hub as hub:
        with pytest.raises(HandlerTimeoutError):
            await hub.execute(Napper(nap=0.5, expire_time=0.2))
        assert runs(database)[0][1] == "running"  # cut, and no longer renewed
        await until(lambda: runs(database)[0][1] == "done", timeout=10, what="resumed after its lease")
    assert json.loads(runs(database)[0][2] or "null") == "woke"

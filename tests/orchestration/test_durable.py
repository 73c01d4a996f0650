"""Durable generator handlers: step log, replay, deterministic ids, parking."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.errors import ConfigError, HandlerRegistrationError, RunMismatchError
from bollydog.durable import durable
from bollydog.service.app import HubService
from tests.orchestration.saga_handlers import Fulfil, StepFailed


def config(database: Path, durable_runs: bool = True) -> dict[str, Any]:
    return {
        "saga": {
            "handlers": ["tests.orchestration.saga_handlers"],
            "unit_of_work": {
                "module": "bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork",
                "url": f"sqlite+aiosqlite:///{database}",
                "metadata": "tests.orchestration.saga_handlers.Base",
                "durable": durable_runs,
            },
            "protocol": {"module": "bollydog.adapters.sqlalchemy.SqlAlchemyProtocol"},
        }
    }


@asynccontextmanager
async def saga_hub(database: Path, durable_runs: bool = True) -> AsyncIterator[HubService]:
    async with build(config(database, durable_runs), entrypoints=False).hub as hub:
        yield hub


def effects(database: Path, key: str) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as db:
        return [(k, s) for k, s in db.execute("SELECT kind, step FROM saga_effects WHERE key = ? ORDER BY id", (key,))]


def runs(database: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT run_id, status, outcome FROM bollydog_runs ORDER BY created"))


def steps(database: Path, run_id: str) -> list[tuple[int, str, str, int]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT step, kind, name, ok FROM bollydog_steps WHERE run_id = ? ORDER BY step", (run_id,)))


async def test_a_durable_run_logs_each_step_and_its_result(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        command = Fulfil(key="k1")
        assert await hub.execute(command) == {"key": "k1", "total": 150}
    assert effects(database, "k1") == [("do", s) for s in range(1, 6)]
    ((run_id, status, outcome),) = runs(database)
    assert (run_id, status, json.loads(outcome or "null")) == (command.iid, "done", {"key": "k1", "total": 150})
    assert steps(database, run_id) == [(i, "command", "saga.effect", 1) for i in range(5)]


async def test_child_ids_are_derived_from_the_run_and_the_step(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        await hub.execute(Fulfil(key="a", iid="a" * 32))
        await hub.execute(Fulfil(key="b", iid="b" * 32))
    with sqlite3.connect(database) as db:
        ids = [r[0] for r in db.execute("SELECT message_id FROM saga_effects ORDER BY id")]
    assert len(set(ids)) == 10
    from bollydog.durable.runner import _child_id

    assert ids[:5] == [_child_id("a" * 32, step) for step in range(5)]


async def test_a_failed_step_is_thrown_in_and_compensation_runs(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        with pytest.raises(StepFailed):
            await hub.execute(Fulfil(key="f", fail_at=4))
    assert effects(database, "f") == [("do", 1), ("do", 2), ("do", 3), ("undo", 3), ("undo", 2), ("undo", 1)]
    ((run_id, status, outcome),) = runs(database)
    assert status == "failed" and "StepFailed" in (outcome or "")
    assert [s[3] for s in steps(database, run_id)] == [1, 1, 1, 0, 1, 1, 1]  # step 3 (0-based) failed


async def test_delivered_again_after_it_finished_gives_the_same_answer_without_running(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        first = Fulfil(key="k")
        assert await hub.execute(first) == {"key": "k", "total": 150}
        again = Fulfil.model_validate(first.model_dump())
        assert again.iid == first.iid
        assert await hub.execute(again) == {"key": "k", "total": 150}
    assert len(effects(database, "k")) == 5


async def test_without_a_run_store_a_durable_handler_says_what_to_configure(tmp_path: Path) -> None:
    async with saga_hub(tmp_path / "saga.db", durable_runs=False) as hub:
        with pytest.raises(ConfigError, match="durable: true"):
            await hub.execute(Fulfil(key="k"))


async def test_durable_runs_in_an_in_memory_database_are_refused_at_start() -> None:
    from bollydog.adapters.sqlalchemy import SqlAlchemyUnitOfWork

    unit_of_work = SqlAlchemyUnitOfWork("sqlite+aiosqlite://", durable=True)
    with pytest.raises(ConfigError, match=r"durable runs need a database that outlives the process.*use a file"):
        await unit_of_work.connect()
    plain = SqlAlchemyUnitOfWork("sqlite+aiosqlite://")  # without durable runs: fine
    await plain.connect()
    await plain.disconnect()


def test_durable_applies_to_generators_only() -> None:
    async def plain(command: Fulfil) -> None: ...

    with pytest.raises(HandlerRegistrationError, match="async-generator"):
        durable(plain)


async def test_a_log_the_code_no_longer_matches_parks_the_run(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    command = Fulfil(key="m")
    async with saga_hub(database) as hub:
        await hub.execute(command)
    with sqlite3.connect(database) as db:  # as if the run had stopped after step 2 of other code
        db.execute("UPDATE bollydog_runs SET status = 'running'")
        db.execute("UPDATE bollydog_steps SET name = 'saga.undo' WHERE step = 1")
        db.execute("DELETE FROM bollydog_steps WHERE step > 1")
    async with saga_hub(database) as hub:  # recovery replays it on start
        await hub.drain(5)
    ((_, status, outcome),) = runs(database)
    assert status == "parked" and "step 1 yields command saga.effect, the log has command saga.undo" in (outcome or "")
    assert len(effects(database, "m")) == 5  # nothing dispatched


async def test_a_run_recorded_under_another_version_is_parked(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        await hub.execute(Fulfil(key="v"))
    with sqlite3.connect(database) as db:
        db.execute("UPDATE bollydog_runs SET status = 'running', version = '0'")
    async with saga_hub(database) as hub:
        await hub.drain(5)
    ((_, status, outcome),) = runs(database)
    assert status == "parked" and "version '0'" in (outcome or "")
    assert RunMismatchError.status_code == 409


@pytest.mark.parametrize("crash", ["after:2", "before:3", "after:5", "before:1"])
async def test_killed_mid_run_the_run_completes_after_restart_each_effect_once(tmp_path: Path, crash: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    database = tmp_path / "saga.db"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config(database)))
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root), "SAGA_CRASH": crash}
    killed = subprocess.run(
        [sys.executable, "-m", "tests.orchestration.saga_crash", str(config_path), "k9"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ((run_id, status, _),) = runs(database)
    assert status == "running"
    step = int(crash.split(":")[1])
    committed = step if crash.startswith("after") else step - 1
    assert effects(database, "k9") == [("do", s) for s in range(1, committed + 1)]
    assert len(steps(database, run_id)) == committed  # each committed effect has its step row

    async with saga_hub(database) as hub:  # the restart resumes it
        assert await hub.drain(10)
    ((_, status, outcome),) = runs(database)
    assert status == "done" and json.loads(outcome or "null") == {"key": "k9", "total": 150}
    assert effects(database, "k9") == [("do", s) for s in range(1, 6)]  # each exactly once
    assert len(steps(database, run_id)) == 5


def kill_mid_run(tmp_path: Path, database: Path, crash: str, key: str, fail_at: int = 0) -> None:
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config(database)))
    env = {**os.environ, "BOLLYDOG_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root), "SAGA_CRASH": crash}
    killed = subprocess.run(
        [sys.executable, "-m", "tests.orchestration.saga_crash", str(config_path), key, str(fail_at)],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


async def test_killed_during_compensation_the_compensation_resumes_and_runs_once(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    kill_mid_run(tmp_path, database, "undo-after:3", "c", fail_at=4)
    assert effects(database, "c") == [("do", 1), ("do", 2), ("do", 3), ("undo", 3)]
    async with saga_hub(database) as hub:
        assert await hub.drain(10)
    ((_, status, outcome),) = runs(database)
    assert status == "failed" and "StepFailed" in (outcome or "")
    assert effects(database, "c") == [("do", 1), ("do", 2), ("do", 3), ("undo", 3), ("undo", 2), ("undo", 1)]


async def test_time_ids_randomness_sleep_and_waits_are_recorded_and_replayed(tmp_path: Path) -> None:
    import asyncio
    import time

    from tests.orchestration.saga_handlers import Pinged, Timed

    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        command = Timed(key="t")
        running = await hub.put_message(command)
        await asyncio.sleep(0.4)  # past the nap: the wait is registered
        await hub.execute(Pinged(key="t", n=7))
        first = await asyncio.wait_for(running.state, 5)
    assert first["ping"] == 7 and len(first["token"]) == 32
    assert [s[1] for s in steps(database, command.iid)] == ["now", "id", "random", "sleep", "wait"]
    with sqlite3.connect(database) as db:  # as if the process had died before the end
        db.execute("UPDATE bollydog_runs SET status = 'running'")
    began = time.monotonic()
    async with saga_hub(database) as hub:
        assert await hub.drain(5)  # no event this time: the wait is answered from the log
    assert time.monotonic() - began < 2  # and the nap is not taken again
    ((_, status, outcome),) = runs(database)
    assert status == "done" and json.loads(outcome or "null") == first  # same time, id, number, event


async def test_more_runs_to_resume_than_the_queue_holds_all_complete(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        for i in range(12):
            await hub.execute(Fulfil(key=f"q{i}"))
    with sqlite3.connect(database) as db:
        db.execute("UPDATE bollydog_runs SET status = 'running', outcome = NULL")
    hub = build(config(database), entrypoints=False, hub_options={"queue_max_size": 5, "concurrency": 1}).hub
    async with hub:
        for _ in range(100):
            if all(status == "done" for _, status, _ in runs(database)):
                break
            await hub.drain(0.1)
    assert [status for _, status, _ in runs(database)] == ["done"] * 12
    with sqlite3.connect(database) as db:  # replayed from the log: no step ran again
        assert db.execute("SELECT count(*) FROM saga_effects").fetchone()[0] == 60


async def test_delivered_again_after_it_failed_raises_the_recorded_error_without_running(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        first = Fulfil(key="r", fail_at=2)
        with pytest.raises(StepFailed):
            await hub.execute(first)
        with pytest.raises(StepFailed) as again:
            await hub.execute(Fulfil.model_validate(first.model_dump()))
        assert again.value.step == 2 and "which failed" in again.value.__notes__[0]
    assert effects(database, "r") == [("do", 1), ("undo", 1)]  # step 2 was refused, rolled back


async def test_a_replayed_wait_leaves_no_waiter_behind(tmp_path: Path) -> None:
    import asyncio

    from tests.orchestration.saga_handlers import Pinged, Timed

    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        running = await hub.put_message(Timed(key="w", nap=0))
        await asyncio.sleep(0.1)
        await hub.execute(Pinged(key="w", n=1))
        await asyncio.wait_for(running.state, 5)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE bollydog_runs SET status = 'running'")
    async with saga_hub(database) as hub:
        assert await hub.drain(5)
        assert hub.waiting.waiting == 0


async def test_a_run_cut_by_its_deadline_stays_running_and_the_next_start_finishes_it(tmp_path: Path) -> None:
    import asyncio
    import time

    from bollydog.errors import HandlerTimeoutError
    from tests.orchestration.saga_handlers import Napper

    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        with pytest.raises(HandlerTimeoutError):
            await hub.execute(Napper(nap=0.5, expire_time=0.2))
    ((run_id, status, _),) = runs(database)
    assert status == "running" and [s[1] for s in steps(database, run_id)] == ["sleep"]
    await asyncio.sleep(0.4)  # past the planned end of the nap
    began = time.monotonic()
    async with saga_hub(database) as hub:
        assert await hub.drain(5)
    assert time.monotonic() - began < 0.4  # the nap is not taken again from the start
    ((_, status, outcome),) = runs(database)
    assert status == "done" and json.loads(outcome or "null") == "woke"


async def test_the_same_run_delivered_twice_in_one_process_runs_once(tmp_path: Path) -> None:
    import asyncio

    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        first = Fulfil(key="twice")
        copies = [Fulfil.model_validate(first.model_dump()) for _ in range(3)]
        results = await asyncio.gather(*(hub.execute(m) for m in (first, *copies)))
    assert results == [{"key": "twice", "total": 150}] * 4
    assert effects(database, "twice") == [("do", s) for s in range(1, 6)]


async def test_a_patch_marker_lets_new_code_replay_an_older_versions_run(tmp_path: Path) -> None:
    from tests.orchestration import saga_handlers

    database = tmp_path / "saga.db"
    async with saga_hub(database) as hub:
        await hub.execute(Fulfil(key="p"))
    with sqlite3.connect(database) as db:  # a run of version "0", stopped after three steps
        db.execute("UPDATE bollydog_runs SET status = 'running', version = '0'")
        db.execute("DELETE FROM bollydog_steps WHERE step > 2")
    with pytest.raises(TypeError, match="tuple of version strings"):
        durable(version="1", replays="0")
    with pytest.raises(TypeError, match="non-empty string"):
        durable(version=2)  # type: ignore[arg-type]
    # The new code, which declares that it replays version "0" runs.
    patched = durable(version="1", replays=("0",))(saga_handlers.fulfil.__wrapped__)
    hub = build(config(database), entrypoints=False).hub
    handler = hub.registry.command_handler(Fulfil)
    assert handler is not None
    handler.func = handler.start = patched
    async with hub:
        assert await hub.drain(5)
    ((_, status, outcome),) = runs(database)
    assert status == "done" and json.loads(outcome or "null") == {"key": "p", "total": 150}
    assert len(effects(database, "p")) == 7  # steps 4 and 5, forgotten above, ran again

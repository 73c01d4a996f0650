"""``bollydog sagas``: list, show, cancel and resume a durable run left by a killed process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.orchestration.test_durable import config, effects, kill_mid_run, runs, saga_hub

ROOT = Path(__file__).resolve().parents[2]


def bollydog(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOLLYDOG_LOG_LEVEL": "WARNING"}
    env.pop("SAGA_CRASH", None)
    return subprocess.run([sys.executable, "-m", "bollydog.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_list_show_cancel_resume(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    kill_mid_run(tmp_path, database, "before:3", "cli")
    cfg = str(tmp_path / "config.json")
    ((run_id, _, _),) = runs(database)

    listed = bollydog("sagas", "list", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:3] == [run_id, "running", "saga.fulfil"] and "1 run(s)" in listed.stderr
    assert bollydog("sagas", "list", "--config", cfg, "--status", "done").stdout == ""

    shown = bollydog("sagas", "show", "--config", cfg, run_id)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["status"] == "running" and detail["input"]["name"] == "saga.fulfil"
    # Still held by the killed process, whose pid runs no more: the next start takes it over.
    assert detail["owner"].split("/")[2].isdigit() and detail["lease_until"] > 0
    assert [(s["step"], s["name"], s["value"]) for s in detail["steps"]] == [
        (0, "saga.effect", {"step": 1, "value": 10}), (1, "saga.effect", {"step": 2, "value": 20}),
    ]

    cancelled = bollydog("sagas", "cancel", "--config", cfg, run_id)
    assert cancelled.returncode == 0 and f"run {run_id} cancelled" in cancelled.stdout
    async with saga_hub(database) as hub:  # a cancelled run is not resumed on start
        assert await hub.drain(5)
    assert runs(database)[0][1] == "cancelled" and len(effects(database, "cli")) == 2
    listed = json.loads(bollydog("sagas", "list", "--config", cfg, "--json").stdout)
    assert (listed["status"], listed["owner"], listed["lease_until"]) == ("cancelled", None, 0.0)

    resumed = bollydog("sagas", "resume", "--config", cfg, run_id, "--now")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1]) == {"key": "cli", "total": 150}
    assert effects(database, "cli") == [("do", s) for s in range(1, 6)]

    again = bollydog("sagas", "resume", "--config", cfg, run_id)
    assert again.returncode == 2 and "is done; there is nothing to resume" in again.stderr


async def test_resume_from_a_step_dispatches_it_again(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    kill_mid_run(tmp_path, database, "after:2", "again")
    cfg = str(tmp_path / "config.json")
    ((run_id, _, _),) = runs(database)
    assert bollydog("sagas", "cancel", "--config", cfg, run_id).returncode == 0
    resumed = bollydog("sagas", "resume", "--config", cfg, run_id, "--from-step", "1")
    assert resumed.returncode == 0 and "1 step(s) forgotten" in resumed.stdout
    async with saga_hub(database) as hub:
        assert await hub.drain(10)
    # Step 2's effect was forgotten by request: it is dispatched (and written) a second time.
    assert effects(database, "again") == [("do", 1), ("do", 2), ("do", 2), ("do", 3), ("do", 4), ("do", 5)]


def test_precise_errors(tmp_path: Path) -> None:
    database = tmp_path / "saga.db"
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config(database)))
    unknown = bollydog("sagas", "show", "--config", str(cfg), "nosuchrun")
    assert unknown.returncode == 2 and "no durable run 'nosuchrun'" in unknown.stderr
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(config(database, durable_runs=False)))
    none = bollydog("sagas", "list", "--config", str(plain))
    assert none.returncode == 2 and "durable: true" in none.stderr
    bad = bollydog("sagas", "list", "--config", str(cfg), "--status", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr

"""Schedules in one process: interval ticks on the real clock, cron ticks on a manual clock,
missed ticks, and the start-up errors of a schedule that names nothing real."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.errors import ConfigError
from bollydog.schedule import Cron, Interval, ManualClock, Scheduler
from tests.schedule import ticking_handlers

MODULE = "tests.schedule.ticking_handlers"
UTC = datetime.timezone.utc


def config(**schedules: Any) -> dict[str, Any]:
    return {
        "jobs": {"handlers": [MODULE]},
        "scheduler": {"app": "bollydog.schedule.Scheduler", "schedules": schedules},
    }


@pytest.fixture(autouse=True)
def calls() -> list[dict[str, Any]]:
    ticking_handlers.CALLS.clear()
    return ticking_handlers.CALLS


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def scheduler_of(composition: Any) -> Scheduler:
    (scheduler,) = composition.schedulers
    return scheduler


async def test_an_interval_schedule_dispatches_through_the_hub_on_the_real_clock(calls: list[dict[str, Any]]) -> None:
    composition = build(config(beat={"message": "jobs.tick", "every": 0.1, "fields": {"label": "beat"}}))
    async with composition.hub:
        await until(lambda: len(calls) >= 3)
    beats = [c for c in calls if c["label"] == "beat"]
    assert len(beats) >= 3
    # Each tick is a new top-level message: a trace of its own, no parent span.
    assert len({c["trace_id"] for c in beats}) == len(beats)
    assert all(c["parent"] is None for c in beats)
    # Ticks land on the multiples of the interval, about 0.1 s apart.
    gaps = [b["at"] - a["at"] for a, b in zip(beats, beats[1:])]
    assert all(0.05 < gap < 0.3 for gap in gaps), gaps
    assert scheduler_of(composition).planned[0].fired >= len(beats)


async def test_cron_ticks_follow_a_manual_clock_and_missed_ticks_fire_once(calls: list[dict[str, Any]]) -> None:
    start = datetime.datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    clock = ManualClock(start)
    cfg = config(sweep={"message": "sweep", "cron": "*/5 * * * *", "fields": {"older_than": 30}})
    cfg["scheduler"]["clock"] = clock
    composition = build(cfg)
    scheduler = scheduler_of(composition)
    hub = composition.hub
    async with hub:
        await clock.asleep()
        await clock.advance(3 * 60)  # 00:04: nothing due yet
        assert calls == []
        await clock.advance(60)  # 00:05
        await hub.drain(5)
        assert calls == [{"label": "sweep 30"}]
        # Asleep for half an hour (00:05 -> 00:36): 00:10 ... 00:35 were due; only 00:35 fires.
        await clock.advance(31 * 60)
        await hub.drain(5)
        assert len(calls) == 2
        entry = scheduler.planned[0]
        assert (entry.fired, entry.skipped) == (2, 5)
        await clock.advance(4 * 60)  # 00:40
        await hub.drain(5)
        assert len(calls) == 3


async def test_a_command_declared_with_every_gets_a_scheduler_without_a_config_section() -> None:
    composition = build({"jobs": {"handlers": [MODULE]}})
    (planned,) = scheduler_of(composition).planned
    assert planned.name == "hourly-sweep"
    assert planned.reference == "jobs.purge" and planned.active
    assert planned.trigger == Interval(3600) and dict(planned.fields) == {"older_than": 7}
    assert composition.schedulers[0] in composition.hub.entrypoints


def test_triggers_compute_the_same_ticks_everywhere() -> None:
    assert Interval(60).next_after(125.0) == 180.0
    assert Interval(60).next_after(180.0) == 240.0  # strictly after
    paris = Cron("0 9 * * *", "Europe/Paris")
    moment = datetime.datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp()
    assert datetime.datetime.fromtimestamp(paris.next_after(moment), UTC) == datetime.datetime(2026, 7, 2, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"message": "jobs.tock", "every": 5}, "scheduler.schedules.s.message: unknown message 'jobs.tock'; did you mean jobs.tick"),
        ({"message": "jobs.ticked", "every": 5}, "jobs.ticked is an Event; schedules dispatch Commands"),
        ({"message": "jobs.sweep", "every": 5}, "scheduler.schedules.s.fields: older_than: Field required"),
        ({"message": "jobs.sweep", "every": 5, "fields": {"older_than": "soon"}}, "scheduler.schedules.s.fields: older_than:"),
        ({"message": "jobs.tick", "cron": "61 * * * *"}, "scheduler.schedules.s.cron: '61 * * * *' is not a valid cron expression"),
        ({"message": "jobs.tick", "cron": "* * * * *", "timezone": "Mars/Base"}, "scheduler.schedules.s.timezone: unknown time zone 'Mars/Base'"),
        ({"message": "jobs.tick", "every": -1}, "scheduler.schedules.s.every: expected a positive number of seconds"),
        ({"message": "jobs.tick"}, "scheduler.schedules.s: give exactly one of every (seconds) or cron"),
        ({"message": "jobs.tick", "every": 1, "cron": "* * * * *"}, "give exactly one of every"),
        ({"message": "jobs.tick", "every": 1, "at": "noon"}, "scheduler.schedules.s: unknown key(s) at; known: cron, every, fields, message, timezone"),
    ],
)
def test_a_schedule_naming_nothing_real_is_a_config_error(schedule: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(config(s=schedule))
    assert expected in str(caught.value)


def test_the_unknown_name_error_lists_the_known_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        build(config(s={"message": "nothing.here", "every": 5}))
    assert "known: " in str(caught.value) and "jobs.tick" in str(caught.value)


def test_a_schedule_of_a_domain_run_elsewhere_is_listed_but_not_fired_here() -> None:
    cfg = config(beat={"message": "jobs.tick", "every": 5})
    cfg["front"] = {"handlers": ["tests.core.sample_handlers"]}
    composition = build(cfg, exclude=["jobs"])
    (beat,) = [p for p in scheduler_of(composition).planned if p.name == "beat"]
    assert beat.domain == "jobs" and not beat.active


async def test_a_stopping_hub_stops_ticking_first(calls: list[dict[str, Any]]) -> None:
    composition = build(config(beat={"message": "jobs.tick", "every": 0.05}))
    hub = composition.hub
    async with hub:
        await until(lambda: len(calls) >= 1)
    count = len(calls)
    await asyncio.sleep(0.2)
    assert len(calls) == count


def test_bollydog_ls_lists_the_schedules(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from bollydog.cli.main import cli

    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n  handlers: [tests.schedule.ticking_handlers]\n"
        "scheduler:\n  app: !module bollydog.schedule.Scheduler\n  schedules:\n"
        "    nightly: {message: jobs.sweep, cron: '0 3 * * *', fields: {older_than: 30}}\n"
    )
    result = CliRunner().invoke(cli, ["ls", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    listed = {s["schedule"]: s for s in json.loads(result.output)["schedules"]}
    assert listed["nightly"] == {
        "schedule": "nightly", "message": "jobs.sweep", "trigger": "cron 0 3 * * * (UTC)",
        "fields": {"older_than": 30}, "domain": "jobs", "runs_here": True, "source": "config",
    }
    assert listed["hourly-sweep"]["source"] == "tests.schedule.ticking_handlers.Purge"
    table = CliRunner().invoke(cli, ["ls", "--config", str(path)])
    assert "SCHEDULES" in table.output and "nightly" in table.output and "every 3600s" in table.output
    bad = path.read_text().replace("jobs.sweep", "jobs.swep")
    path.write_text(bad)
    failed = CliRunner().invoke(cli, ["ls", "--config", str(path)])
    assert failed.exit_code == 2 and "unknown message 'jobs.swep'" in failed.output


async def test_each_tick_is_a_span_of_its_own_named_canonically(calls: list[dict[str, Any]]) -> None:
    pytest.importorskip("opentelemetry.sdk")
    clock = ManualClock(1_800_000_000.0)
    cfg = config(beat={"message": "jobs.tick", "every": 60})
    cfg["scheduler"]["clock"] = clock
    from bollydog.telemetry import TelemetryPlugin

    hub = build(cfg).hub
    plugin = TelemetryPlugin(traces_exporter="memory", metrics_exporter="none", install_global=False).install(hub)
    async with hub:
        await clock.asleep()
        await clock.advance(60)
        await clock.advance(60)
        assert await hub.drain(5)
        spans = [s for s in plugin.span_exporter.get_finished_spans() if s.name == "jobs.tick"]
    assert len(spans) == 2
    assert {format(s.context.trace_id, "032x") for s in spans} == {c["trace_id"] for c in calls}
    assert all(s.parent is None for s in spans)


def test_a_cron_schedule_without_croniter_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bollydog.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "croniter", None)  # import croniter raises ImportError
    with pytest.raises(MissingDependencyError) as caught:
        build(config(s={"message": "jobs.tick", "cron": "* * * * *"}))
    assert "pip install 'bollydog[schedule]'" in str(caught.value)
    build(config(s={"message": "jobs.tick", "every": 5}))  # intervals need nothing


"""The "bollydog" meter: counts by outcome, durations, hub gauges, retries and dead letters."""

from __future__ import annotations

import asyncio

import pytest

from bollydog.hub.hooks import DeadLetter
from tests.telemetry.conftest import metric_points, traced_hub
from tests.telemetry.traced_handlers import GATES, Boom, Flaky, Gate, Nap, Reserve


def by_attributes(points) -> dict:
    return {tuple(sorted(p.attributes.items())): p for p in points}


async def test_handled_failed_and_duration_by_domain_name_outcome():
    async with traced_hub(traces_exporter="none") as (hub, plugin):
        for sku in "abc":
            await hub.execute(Reserve(sku=sku))
        with pytest.raises(ValueError):
            await hub.execute(Boom())
        with pytest.raises(TimeoutError):
            await hub.execute(Nap(seconds=5, expire_time=0.01))
        handled = by_attributes(metric_points(plugin, "bollydog.messages.handled"))
        assert {key: p.value for key, p in handled.items()} == {
            (("domain", "shop"), ("message", "shop.reserve"), ("name", "reserve"), ("outcome", "ok")): 3,
            (("domain", "shop"), ("message", "shop.boom"), ("name", "boom"), ("outcome", "error")): 1,
            (("domain", "shop"), ("message", "shop.nap"), ("name", "nap"), ("outcome", "timeout")): 1,
        }
        failed = by_attributes(metric_points(plugin, "bollydog.messages.failed"))
        assert {key: p.value for key, p in failed.items()} == {
            (("domain", "shop"), ("error.type", "ValueError"), ("message", "shop.boom"), ("name", "boom"), ("outcome", "error")): 1,
            (("domain", "shop"), ("error.type", "HandlerTimeoutError"), ("message", "shop.nap"), ("name", "nap"), ("outcome", "timeout")): 1,
        }
        durations = by_attributes(metric_points(plugin, "bollydog.handler.duration"))
        nap = durations[(("domain", "shop"), ("message", "shop.nap"), ("name", "nap"), ("outcome", "timeout"))]
        assert nap.count == 1 and 0.005 <= nap.sum < 1.0  # seconds
        assert 0.01 in nap.explicit_bounds  # second-scale buckets, not the SDK's millisecond ones
        assert durations[(("domain", "shop"), ("message", "shop.reserve"), ("name", "reserve"), ("outcome", "ok"))].count == 3


async def test_queue_depth_and_in_flight_gauges():
    GATES["g"] = asyncio.Event()
    async with traced_hub(traces_exporter="none") as (hub, plugin):
        hub.concurrency = 1
        # One runs, the intake holds the next one waiting for capacity, the third stays queued.
        messages = [await hub.put_message(Gate(key="g")) for _ in range(3)]
        await asyncio.sleep(0.01)
        (queue,) = metric_points(plugin, "bollydog.hub.queue_size")
        (inflight,) = metric_points(plugin, "bollydog.hub.task_count")
        assert (inflight.value, queue.value) == (hub.task_count, hub.queue_size) == (1, 1)
        GATES["g"].set()
        await asyncio.gather(*(m.state for m in messages))
        (queue,) = metric_points(plugin, "bollydog.hub.queue_size")
        assert queue.value == 0


async def test_retries_counter(fast_retries):
    async with traced_hub(traces_exporter="none") as (hub, plugin):
        await hub.execute(Flaky(failures=2, delivery_count=3))
        (retries,) = metric_points(plugin, "bollydog.messages.retried")
        assert retries.value == 2 and dict(retries.attributes) == {"message": "shop.flaky", "domain": "shop", "name": "flaky"}


async def test_dead_letters_reported_through_the_hub_hook_are_counted():
    async with traced_hub(traces_exporter="none") as (hub, plugin):
        hub.hooks.dead_lettered(DeadLetter("shop.reserve", "shop", "max deliveries", Reserve(sku="x")))
        hub.hooks.dead_lettered(DeadLetter("shop.reserve", "shop", "max deliveries"))
        (point,) = metric_points(plugin, "bollydog.messages.dead_lettered")
        assert point.value == 2
        assert dict(point.attributes) == {"message": "shop.reserve", "domain": "shop", "name": "reserve"}
        # Free-text reasons (transports pass error messages) must not multiply the series.
        for i in range(3):
            hub.hooks.dead_lettered(DeadLetter("shop.reserve", "shop", f"invalid payload: missing field {i}"))
        (point,) = metric_points(plugin, "bollydog.messages.dead_lettered")
        assert point.value == 5
    assert not hub.hooks.dead_lettered and not hub.hooks.retrying  # the stopped plugin left

"""Completion notices are bounded: beyond ``notice_buffer`` waiting, the oldest are dropped."""

from __future__ import annotations

from bollydog.hub.hooks import Completion
from tests.distribute import calc_handlers as calc
from tests.transport.contract import eventually
from tests.transport.deployments import MemoryDeployment


async def _true(value: bool) -> bool:
    return value


async def test_beyond_the_buffer_the_oldest_notices_are_dropped() -> None:
    deployment = MemoryDeployment()
    seen: list[Completion] = []
    async with (
        deployment.process(["calc"], notice_interval=0.02, notice_buffer=2) as worker,
        deployment.process([], notice_interval=0.02) as front,
    ):
        front.hooks.remote_completed.connect(seen.append)
        feed = worker.transport.notices
        assert await eventually(lambda: _true(feed.wanted))
        for i in range(5):  # in one go: the feed's sender has not run yet
            feed.completed(calc.Add(a=i, b=0), i, None)
        assert await eventually(lambda: _true(len(seen) == 2))
        assert [c.result for c in seen] == [3, 4] and feed.dropped == 3 and feed.published == 2
        front.hooks.remote_completed.disconnect(seen.append)

"""Now, Random, NewId, Sleep in a plain (not durable) generator handler: just the values."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bollydog.hub.steps import NewId, Now, Random, Sleep
from bollydog.models.base import Command
from bollydog.testing import running_hub


class Values(Command):
    nap: float = 0.05


async def values(command: Values) -> Any:
    began = yield Now()
    key = yield NewId()
    luck = yield Random()
    slept = yield Sleep(command.nap)
    ended = yield Now()
    yield {"began": began, "key": key, "luck": luck, "slept": slept, "took": ended - began}


async def test_the_values_and_the_sleep() -> None:
    async with running_hub(handlers=[values]) as hub:
        before = time.time()
        got = await hub.execute(Values(nap=0.05))
        other = await hub.execute(Values(nap=0))
    assert before <= got["began"] <= time.time()
    assert len(got["key"]) == 32 and int(got["key"], 16) >= 0 and got["key"] != other["key"]
    assert 0 <= got["luck"] < 1 and got["slept"] is None
    assert got["took"] >= 0.05 > other["took"]


def test_sleep_refuses_what_is_not_a_duration() -> None:
    for bad in (-1, float("inf"), "5"):
        with pytest.raises(ValueError, match="Sleep takes a number of seconds"):
            Sleep(bad)  # type: ignore[arg-type]

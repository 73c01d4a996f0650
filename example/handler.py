"""Introspection, the seed's way: how busy is the hub?"""

from typing import Any

from bollydog.globals import hub
from bollydog.models.base import Command
from bollydog.service import builtins


class TaskCount(Command):
    """How many messages the hub is handling right now (this one excluded)."""


class TaskList(Command):
    """The messages the hub is handling right now."""


async def task_count(command: TaskCount) -> int:
    counts = await hub.execute(builtins.TaskCount())
    return counts["running"]


async def task_list(command: TaskList) -> list[dict[str, Any]]:
    return await hub.execute(builtins.TaskList())

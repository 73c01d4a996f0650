"""Introspection commands every hub serves, in domain ``bollydog``."""

from __future__ import annotations

import time
from typing import Any

from bollydog.handlers import HandlerRegistry
from bollydog.models.base import Command
from bollydog.models.service import AppService
from bollydog.types import HubT


class TaskCount(Command):
    """How many messages the hub is handling right now, and how many wait in its queue."""

    domain = "bollydog"
    mcp_annotations = {"readOnlyHint": True}


class TaskList(Command):
    """The messages being handled right now."""

    domain = "bollydog"
    mcp_annotations = {"readOnlyHint": True}


class Messages(Command):
    """Every message this hub knows: domain, name, kind, fields and handlers."""

    domain = "bollydog"
    mcp_annotations = {"readOnlyHint": True}


def _others(command: Command, hub: HubT) -> list[Any]:
    # The asking message is itself in flight when it was queued, and so is the message whose
    # handler asked (a TaskCount of your own that wraps this one): neither counts.
    return [
        m for m in hub.inflight_messages()
        if m is not command and m.span_id != command.parent_span_id
    ]


async def task_count(command: TaskCount, hub: HubT) -> dict[str, int]:
    return {"running": len(_others(command, hub)), "queued": hub.queue_size}


async def task_list(command: TaskList, hub: HubT) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "iid": m.iid,
            "domain": m.domain,
            "name": m.name,
            "trace_id": m.trace_id,
            "age": round(now - m.created_time, 6),
        }
        for m in _others(command, hub)
    ]


async def messages(command: Messages, hub: HubT) -> list[dict[str, Any]]:
    return describe_messages(hub.registry)


def describe_messages(registry: HandlerRegistry) -> list[dict[str, Any]]:
    """Every registered message: domain, name, kind, class, user fields, handlers."""
    described = []
    for cls in registry.message_classes():
        if cls in registry.commands:
            kind, handlers = "command", [registry.commands[cls].qualname]
        elif cls in registry.remote:
            kind, handlers = "command", [f"(remote: domain {registry.remote[cls][0]})"]
        else:
            kind, handlers = "event", [h.qualname for h in registry.event_handlers(cls)]
            handlers += [f"(remote: domain {domain})" for domain in sorted(registry.remote_events.get(cls, ()))]
        name = registry.name_of(cls)
        described.append(
            {
                "message": name,
                "domain": name.rpartition(".")[0],
                "name": cls.name,
                "kind": kind,
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "fields": sorted(cls.user_fields()),
                "handlers": handlers,
            }
        )
    return sorted(described, key=lambda d: (d["domain"], d["name"]))


class BollydogService(AppService):
    """The built-in app of domain ``bollydog``."""

    domain = "bollydog"

    def __init__(self, **options: Any) -> None:
        super().__init__(handlers=[__name__], **options)

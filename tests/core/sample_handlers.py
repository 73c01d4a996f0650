"""Handlers discovered by the tests (module-level, as users write them)."""

from __future__ import annotations

import asyncio
import time
from typing import Union

from bollydog.globals import app, hub, message, protocol, session
from bollydog.models.base import Command, Event, Session
from bollydog.models.protocol import Protocol
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.core.sample_messages import Add, Imported, Mul, Ping, SelfHandled, Sleep, SyncWork, Whoami


class Noted(Event):
    text: str


class Unioned(Command):
    value: int


class Piped(Command):
    value: int


async def add(command: Add) -> int:
    return command.a + command.b


async def mul(command: Mul) -> int:
    return command.a * command.b


def sync_work(command: SyncWork) -> float:
    # A plain function: it runs in a worker thread, so blocking here does not block the loop.
    time.sleep(command.seconds)
    return command.seconds


async def sleep(command: Sleep) -> str:
    await asyncio.sleep(command.seconds)
    return command.label


async def whoami(command: Whoami, current: Session, the_hub: HubService, the_app: AppService) -> dict:
    return {
        "injected_user": current.username if current else None,
        "global_user": session.username if session else None,
        "message_iid": message.iid,
        "same_hub": the_hub is hub._get_current_object(),
        "app_domain": the_app.domain,
        "global_app_domain": app.domain,
    }


async def either(command: Union[Ping, Unioned]) -> str:
    return f"either:{type(command).__name__}"


async def piped(command: Piped | Noted) -> str:
    return f"piped:{type(command).__name__}"


async def note_one(event: Noted) -> str:
    return f"one:{event.text}"


async def note_two(event: Noted) -> str:
    return f"two:{event.text}"


def not_a_handler(value: int) -> int:
    return value


# Imported here, defined elsewhere: discovery must ignore it.
from tests.core.sample_messages import imported_handler  # noqa: E402,F401

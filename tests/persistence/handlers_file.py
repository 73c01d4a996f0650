"""Handlers for the file adapter tests (discovered as ``tests.persistence.handlers_file``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bollydog.adapters.file import FileProtocol
from bollydog.models.base import Command, Event

SEEN: list[str] = []


class Boom(Exception):
    pass


class FilesChanged(Event):
    paths: list[str]


class WriteFiles(Command):
    """Write (text) or delete (None) each path, in order; optionally fail or stall afterwards."""

    files: dict[str, str | None]
    fail: bool = False
    sleep: float = 0.0


class ReadFile(Command):
    path: str


class ListFiles(Command):
    prefix: str = ""


async def write_files(command: WriteFiles, protocol: FileProtocol) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for path, text in command.files.items():
        if text is None:
            seen[f"deleted {path}"] = await protocol.delete(path)
        else:
            await protocol.write(path, text)
    root = protocol.unit_of_work.root
    for path, text in command.files.items():
        # Staged, not applied: the handler sees its writes, the disk does not (yet).
        seen[path] = {
            "read": await protocol.read(path),
            "exists": await protocol.exists(path),
            "on_disk": (root / path).read_text() if (root / path).is_file() else None,
        }
    seen["listed"] = await protocol.list()
    protocol.unit_of_work.record_event(FilesChanged(paths=sorted(command.files)))
    if command.sleep:
        await asyncio.sleep(command.sleep)
    if command.fail:
        raise Boom("failed after writing")
    return seen


async def read_file(command: ReadFile, protocol: FileProtocol) -> str | None:
    return await protocol.read(command.path)


async def list_files(command: ListFiles, protocol: FileProtocol) -> list[str]:
    return await protocol.list(command.prefix)


async def on_files_changed(event: FilesChanged) -> None:
    SEEN.extend(event.paths)


def leftovers(root: os.PathLike[str]) -> list[str]:
    """Temporary files left in ``root`` (there should be none)."""
    return [name for _, _, files in os.walk(root) for name in files if ".bollydog-tmp-" in name]

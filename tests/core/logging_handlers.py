"""A handler that logs, through stdlib logging and through structlog."""

import logging

import structlog

from bollydog.models.base import Command


class Loud(Command):
    word: str


async def loud(command: Loud) -> str:
    logging.getLogger("tests.loud").warning("stdlib says %s", command.word)
    structlog.get_logger("tests.loud").warning("structlog says", word=command.word)
    return command.word

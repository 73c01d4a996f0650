"""What a process run by the reload supervisor tells it, and the sockets it inherits.

``bollydog service --reload`` runs the service in a child process. The child sends the
supervisor its listening sockets (as file descriptors, ``SCM_RIGHTS``), says when it is ready,
and asks for a restart when a change cannot be swapped in place. The supervisor hands the
sockets to the next child: both accept from the same listening socket while the old one
drains, so no connection is refused. Standard library only: the entrypoint kit imports this.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

__all__ = ["SUPERVISOR_FD", "LISTEN_FDS", "announce", "inherited_socket", "supervised"]

log = logging.getLogger("bollydog.reload")

#: The child's end of the control channel (a datagram socket) to its supervisor.
SUPERVISOR_FD = "BOLLYDOG_SUPERVISOR_FD"
#: JSON object: entrypoint section -> listening socket descriptor, for a child to take over.
LISTEN_FDS = "BOLLYDOG_LISTEN_FDS"


def supervised() -> bool:
    """True in a child of ``bollydog service --reload``."""
    return os.environ.get(SUPERVISOR_FD, "").isdigit()


def announce(event: str, *, fds: list[int] | None = None, **fields: Any) -> None:
    """Tell the supervisor ``event`` (``listening``, ``ready``, ``restart``); nothing when not
    supervised."""
    if not supervised():
        return
    payload = json.dumps({"event": event, "pid": os.getpid(), **fields}).encode()
    channel = socket.socket(fileno=os.dup(int(os.environ[SUPERVISOR_FD])))
    try:
        socket.send_fds(channel, [payload], fds or [])
    except OSError as exc:  # the supervisor is gone: nothing to tell
        log.warning("cannot reach the reload supervisor: %s", exc)
    finally:
        channel.close()


def inherited_socket(section: str) -> socket.socket | None:
    """The listening socket of ``section`` handed over by the supervisor, if any."""
    try:
        table = json.loads(os.environ.get(LISTEN_FDS) or "{}")
    except ValueError:
        return None
    fd = table.get(section) if isinstance(table, dict) else None
    if not isinstance(fd, int):
        return None
    return socket.socket(fileno=os.dup(fd))

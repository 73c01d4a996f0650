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

__all__ = ["LISTEN_FDS", "RESTART_REASON", "STATUS_FILE", "SUPERVISOR_FD", "announce", "inherited_socket", "restart_status", "supervised"]

log = logging.getLogger("bollydog.reload")

#: The child's end of the control channel (a datagram socket) to its supervisor.
SUPERVISOR_FD = "BOLLYDOG_SUPERVISOR_FD"
#: JSON object: entrypoint section -> listening socket descriptor, for a child to take over.
LISTEN_FDS = "BOLLYDOG_LISTEN_FDS"
#: Why the supervisor started this child (a restart's reason); absent for the first child.
RESTART_REASON = "BOLLYDOG_RELOAD_RESTART_REASON"
#: A file the supervisor writes what became of a restart into, before it signals SIGUSR1 to the
#: child still serving (a new process that failed to start).
STATUS_FILE = "BOLLYDOG_RELOAD_STATUS_FILE"


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


def restart_status() -> dict[str, Any] | None:
    """What the supervisor last reported about a restart (see :data:`STATUS_FILE`), if anything."""
    path = os.environ.get(STATUS_FILE)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            status = json.load(file)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None

"""``bollydog service --reload``: the service runs in a child process; this one supervises it.

The child swaps code in place when it can (:mod:`bollydog.reload.swap`). When it cannot (the
config file, a class the config constructs), it asks for a restart, and the graceful restart
goes:

1. a new child starts with the same command line and inherits the listening sockets the first
   child handed over (:mod:`bollydog.reload.handoff`): the same sockets, not new ones on the
   same port, so the kernel's accept queue is shared and no connection is refused;
2. once the new child says it is ready, the old one gets SIGTERM: it stops accepting, drains
   its requests within the shutdown grace (WebSocket clients are closed with 1001, "going
   away") and exits;
3. a new child that fails to start leaves the old one serving (the error is in the log).

SIGINT/SIGTERM of this process go to the child (which runs in its own process group, so a
Ctrl-C reaches it once, through here); a second one forces, as without ``--reload``. This
process exits with the child's status.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from bollydog.reload.handoff import LISTEN_FDS, RESTART_REASON, STATUS_FILE, SUPERVISOR_FD

__all__ = ["supervise"]

log = logging.getLogger("bollydog.reload")

#: Seconds a new child gets to become ready before the old one is kept.
START_TIMEOUT = 60.0


class _Supervisor:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.channel, self.child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.listeners: dict[str, socket.socket] = {}
        self.ready: set[int] = set()
        self.restarts: list[str] = []
        self.signals: list[int] = []
        status, self.status_file = tempfile.mkstemp(prefix="bollydog-reload-", suffix=".json")
        os.close(status)

    def spawn(self, reason: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env[SUPERVISOR_FD] = str(self.child_end.fileno())
        env[STATUS_FILE] = self.status_file
        if reason is not None:
            env[RESTART_REASON] = reason
        else:
            env.pop(RESTART_REASON, None)
        env[LISTEN_FDS] = json.dumps({key: sock.fileno() for key, sock in self.listeners.items()})
        fds = [self.child_end.fileno(), *(sock.fileno() for sock in self.listeners.values())]
        return subprocess.Popen(self.argv, env=env, pass_fds=fds, start_new_session=True)

    def receive(self, timeout: float) -> None:
        """Read what children say for up to ``timeout`` seconds."""
        readable, _, _ = select.select([self.channel], [], [], timeout)
        if not readable:
            return
        data, fds, _, _ = socket.recv_fds(self.channel, 65536, 8)
        try:
            message: dict[str, Any] = json.loads(data)
        except ValueError:
            for fd in fds:
                os.close(fd)
            return
        event = message.get("event")
        if event == "listening" and fds:
            key = str(message.get("key"))
            old = self.listeners.pop(key, None)
            if old is not None:
                old.close()
            self.listeners[key] = socket.socket(fileno=fds[0])
            for fd in fds[1:]:
                os.close(fd)
            return
        for fd in fds:
            os.close(fd)
        if event == "ready":
            self.ready.add(int(message.get("pid", 0)))
        elif event == "restart":
            self.restarts.append(str(message.get("reason", "")))

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        current = self.spawn()
        forwarded = 0
        try:
            while True:
                while forwarded < len(self.signals):
                    _send(current, self.signals[forwarded])
                    forwarded += 1
                status = current.poll()
                if status is not None:
                    return status
                if self.restarts and not self.signals:
                    reason = self.restarts.pop()
                    self.restarts.clear()
                    current = self.take_over(current, reason)
                    continue
                self.receive(0.1)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            with contextlib.suppress(OSError):
                os.unlink(self.status_file)

    def report_failure(self, current: subprocess.Popen[bytes], reason: str, error: str) -> None:
        """Tell the child still serving that its restart failed (its ``/_bollydog/reload``)."""
        log.error("reload: %s; the running process keeps serving", error)
        with open(self.status_file, "w", encoding="utf-8") as file:
            json.dump({"path": "failed", "reason": reason, "error": error}, file)
        _send(current, signal.SIGUSR1)

    def take_over(self, current: subprocess.Popen[bytes], reason: str) -> subprocess.Popen[bytes]:
        log.warning("reload: starting a new process (%s)", reason)
        successor = self.spawn(reason)
        deadline = time.monotonic() + START_TIMEOUT
        while successor.pid not in self.ready:
            if successor.poll() is not None:
                error = f"the new process exited with status {successor.returncode} (its error is in the log above)"
                self.report_failure(current, reason, error)
                return current
            if self.signals or time.monotonic() > deadline:
                _send(successor, signal.SIGTERM)
                successor.wait()
                if not self.signals:
                    self.report_failure(current, reason, f"the new process was not ready within {START_TIMEOUT:.0f}s")
                return current
            self.receive(0.1)
        log.info("reload: new process %d ready; draining process %d", successor.pid, current.pid)
        _send(current, signal.SIGTERM)
        # The old one drains while the new one serves; its status is not ours to report.
        while current.poll() is None:
            self.receive(0.1)
            if self.signals:
                _send(current, signal.SIGTERM)
                break
        return successor


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def supervise(argv: list[str] | None = None) -> int:
    """Run ``argv`` (default: this command line) under supervision; return its exit status."""
    command = argv if argv is not None else [sys.executable, "-m", "bollydog", *sys.argv[1:]]
    return _Supervisor(command).run()

"""Hot reload under load: time from a save to the new code served, and requests refused.

    python benchmarks/reload.py [--swaps 20] [--restarts 20] [--clients 4] [--write-docs]

A temporary app runs under ``bollydog service --reload`` (one HTTP entrypoint). ``--clients``
threads send GET requests back to back for the whole run: half of them on one keep-alive
connection each, half on a new connection per request. Then, one after the other:

- ``--swaps`` edits of the handler (the returned word changes): the time from the write of the
  file to the first response of a keep-alive client carrying the new word;
- ``--restarts`` edits of the config file (the restart path: a new process on the same
  sockets, the old one drained): the time from the write to the first response of the new
  process (each process answers its pid in a header).

Every request is counted: a status other than 200, a refused or reset connection, or a
timeout is a failure, except a reset of an idle keep-alive connection the server closed just as
its client reused it (RFC 9112 9.3.1: the client may retry), which is counted apart. Target: 0
refused or failed requests.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import http.client  # noqa: E402  (after the path fix: this folder's http.py is not the module)

from benchmarks import _harness as H  # noqa: E402

HANDLERS = '''\
import os

from bollydog.models.base import Command


class Word(Command):
    pass


async def word(command: Word) -> dict:
    return {{"word": "{word}", "pid": os.getpid()}}
'''
PATH = "/front/appservice/word"
TARGET_FAILED = 0  # refused or failed; an idle keep-alive connection's close race is reported apart

INTRO = """
`bollydog service --reload` on a temporary app with one HTTP entrypoint, while client threads
send requests back to back (half on keep-alive connections, half on a new connection each):
handler edits swapped in place, then config edits that take the restart path (a new process on
the same listening sockets, the old one drained). "save -> served" is the time from the write
of the file to the first response carrying the new code (swaps) or coming from the new process
(restarts); it includes the watcher's grouping of saves (50 ms of quiet). Every request is counted; a status
other than 200, a refused or reset connection or a timeout is a failure, except a reset of an
idle keep-alive connection closed by the old process just as its client reused it (the race of
any server closing idle connections, which RFC 9112 9.3.1 lets a client retry): counted apart."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Load:
    """Client threads requesting ``PATH``; each response's body is kept as the latest seen."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.outcomes: Counter[str] = Counter()
        self.latest: dict[str, object] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True) for i in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self, keep_alive: bool) -> None:
        import json

        conn: http.client.HTTPConnection | None = None
        reused = False
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn, reused = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10), False
                conn.request("GET", PATH)
                response = conn.getresponse()
                body = response.read()
                outcome = str(response.status)
                if response.status == 200 and keep_alive:
                    with self.lock:
                        self.latest = json.loads(body)
                if not keep_alive or response.will_close:
                    conn.close()
                    conn = None
                else:
                    reused = True
            except (OSError, http.client.HTTPException) as exc:
                # Closed by the server as this request went out on an idle keep-alive
                # connection: the race RFC 9112 9.3.1 lets a client retry (nothing was refused).
                race = reused and isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected))
                outcome = f"{type(exc).__name__}{' (idle keep-alive closed)' if race else ''}"
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.outcomes[outcome] += 1

    def seen(self) -> dict[str, object]:
        with self.lock:
            return dict(self.latest)


def _wait_for(check, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit("timed out waiting for the change to be served")
        time.sleep(0.002)
    return time.perf_counter() - started


def main(args: argparse.Namespace) -> None:
    out = H.Output()
    out(H.machine(["watchfiles", "uvicorn"]))
    root = Path(tempfile.mkdtemp(prefix="bollydog-reload-"))
    (root / "front").mkdir()
    (root / "front" / "__init__.py").write_text("")
    handlers = root / "front" / "handlers.py"
    handlers.write_text(HANDLERS.format(word="w0"))
    port = _free_port()
    config = root / "config.yaml"
    config.write_text(
        "front:\n  handlers: [front.handlers]\n"
        f"http:\n  app: !module bollydog.entrypoint.http.app.HttpService\n  host: 127.0.0.1\n  port: {port}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root), "BOLLYDOG_LOG_LEVEL": "warning"}
    log = (root / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bollydog", "service", "--config", "config.yaml", "--reload"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    load = Load(port, args.clients)
    try:
        _wait_for(lambda: _get_ok(port), 30)
        time.sleep(1.0)  # the watcher is up once the service answers; give it a moment
        load.start()
        time.sleep(0.5)
        swaps = []
        for i in range(1, args.swaps + 1):
            handlers.write_text(HANDLERS.format(word=f"w{i}"))
            swaps.append(_wait_for(lambda: load.seen().get("word") == f"w{i}"))
            time.sleep(0.4)
        restarts = []
        for i in range(args.restarts):
            pid = load.seen().get("pid")
            with config.open("a") as file:
                file.write(f"# restart {i}\n")
            restarts.append(_wait_for(lambda: load.seen().get("pid") not in (None, pid)))
            time.sleep(1.0)  # the old process drains and exits
    finally:
        load.close()
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        log.close()
    total = sum(load.outcomes.values())
    races = sum(v for k, v in load.outcomes.items() if k.endswith("(idle keep-alive closed)"))
    refused = total - load.outcomes.get("200", 0) - races
    out(f"{args.clients} client threads ({(args.clients + 1) // 2} keep-alive, {args.clients // 2} new connection per request); "
        f"{args.swaps} swaps, then {args.restarts} restarts; the service exited {status}")
    out(f"{'change':<28} {H.triple_header('save -> served, ms min / median / max', 7)}")
    out(f"{'handler edit (swap)':<28} {H.triple([s * 1000 for s in swaps], ',.0f', 7)}")
    out(f"{'config edit (restart)':<28} {H.triple([s * 1000 for s in restarts], ',.0f', 7)}")
    out(f"requests: {total:,} ({', '.join(f'{k}: {v:,}' for k, v in sorted(load.outcomes.items()))})")
    out(f"refused or failed: {refused}; idle keep-alive connections closed as their client reused them: {races}")
    out(f"Target: refused or failed requests = {TARGET_FAILED}: {'met' if refused == TARGET_FAILED else 'NOT met'}")
    if args.write_docs:
        H.write_docs("Hot reload", INTRO, out)


def _get_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", PATH)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--write-docs", action="store_true", help="replace the Hot reload section of docs/benchmarks.md")
    main(parser.parse_args())

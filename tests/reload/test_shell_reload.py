"""``bollydog shell --reload``: after a save, the namespace holds the new classes and the hub
runs the new code, in the same REPL."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("watchfiles", reason="--reload needs the reload extra (watchfiles)")

HANDLERS = '''\
from bollydog.models.base import Command


class Greet(Command):
    who: str


async def greet(command: Greet) -> str:
    return "{word} " + command.who
'''


def test_a_save_reaches_the_running_shell(tmp_path: Path) -> None:
    (tmp_path / "greeter").mkdir()
    (tmp_path / "greeter" / "__init__.py").write_text("")
    handlers = tmp_path / "greeter" / "handlers.py"
    handlers.write_text(HANDLERS.format(word="hello"))
    (tmp_path / "config.yaml").write_text("front:\n  handlers: [greeter.handlers]\n")
    env = dict(os.environ, TERM="dumb", BOLLYDOG_SHELL_HISTORY="", BOLLYDOG_LOG_LEVEL="WARNING",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    child = pexpect.spawn(
        sys.executable, ["-m", "bollydog", "shell", "--config", "config.yaml", "--reload"],
        cwd=str(tmp_path), env=env, encoding="utf-8", timeout=10, dimensions=(50, 220),
    )
    transcript = io.StringIO()
    child.logfile_read = transcript

    def result() -> str:
        child.sendline("print('R' + '=' + repr(await hub.execute(Greet(who='ann'))))")
        child.expect(r"R=(.*?)\r?\n")
        value = child.match.group(1)
        child.expect(">>>")
        return value

    try:
        child.expect(">>>")
        assert result() == "'hello ann'"
        handlers.write_text(HANDLERS.format(word="hi"))
        deadline = time.monotonic() + 10
        while (value := result()) != "'hi ann'" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert value == "'hi ann'", transcript.getvalue()[-2000:]
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, transcript.getvalue()[-2000:]

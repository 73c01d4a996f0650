"""``bollydog shell``: the REPL driven in a pseudo-terminal, and its namespace."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from bollydog.cli.shell import run_shell, shell_namespace, shell_session
from bollydog.errors import MissingDependencyError
from bollydog.handlers import Handler
from bollydog.models.base import Command
from bollydog.models.service import AppService
from bollydog.service import builtins
from bollydog.service.app import HubService

ROOT = Path(__file__).resolve().parent.parent
pexpect = pytest.importorskip("pexpect")


def spawn_shell() -> tuple["pexpect.spawn", io.StringIO]:
    env = dict(os.environ, TERM="dumb", BOLLYDOG_SHELL_HISTORY="", BOLLYDOG_LOG_LEVEL="WARNING")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bollydog.cli.main", "shell", "--config", "example/config.yaml"],
        cwd=str(ROOT), env=env, encoding="utf-8", timeout=8, dimensions=(50, 220),
    )
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("Ctrl-D or exit")
    child.expect(">>>")
    return child, transcript


def run_line(child: "pexpect.spawn", line: str) -> None:
    child.sendline(line)
    child.expect(">>>")


def printed(child: "pexpect.spawn", label: str, expression: str) -> str:
    """Print ``expression`` after a label that the echoed input cannot match."""
    child.sendline(f"print('{label}' + '=' + repr(({expression})))")
    child.expect(rf"{label}=(.*?)\r?\n")
    value = child.match.group(1)
    child.expect(">>>")
    return value


def finish(child: "pexpect.spawn", transcript: io.StringIO) -> str:
    child.expect(pexpect.EOF)
    child.close()
    output = transcript.getvalue()
    assert child.exitstatus == 0, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    return output


def test_seed_lines_work_and_ctrl_d_stops_the_hub_cleanly() -> None:
    started = time.monotonic()
    child, transcript = spawn_shell()
    run_line(child, "locals()")
    run_line(child, "from example.handler import TaskList,task_list")
    assert printed(child, "R1", "await task_list(TaskList())") == "[]"
    # The user's TaskCount (example.handler) is in scope; the built-in one under bollydog.
    assert printed(child, "R2", "await hub.execute(TaskCount())") == "0"
    assert printed(child, "R3", "await hub.execute(bollydog.TaskCount())") == "{'running': 0, 'queued': 0}"
    assert printed(child, "R4", "TaskCount.__module__, bollydog.TaskCount.__module__") == (
        "('example.handler', 'bollydog.service.builtins')"
    )
    # Nested dispatch through bollydog.globals.hub, and an orchestrating command with an event.
    assert printed(child, "R5", "(await hub.execute(Restock(sku='a', units=3)))") == "3"
    result = printed(child, "R6", "(await hub.execute(PlaceOrder(customer='ann', lines=[{'sku': 'a', 'quantity': 2}])))['status']")
    assert result == "'placed'"
    assert printed(child, "R7", "type(example).__name__, sorted(apps)") == "('ExampleService', ['bollydog', 'example', 'todo'])"
    assert printed(child, "R8", "__import__('bollydog.globals').globals.hub._get_current_object() is hub") == "True"
    assert printed(child, "R9", "__import__('bollydog.globals').globals.session.username is not None") == "True"
    child.sendcontrol("d")  # leaves at once: no "Do you really want to exit?"
    finish(child, transcript)
    assert "exit?" not in transcript.getvalue()
    assert time.monotonic() - started < 15


def test_exit_call_leaves_quietly() -> None:
    child, transcript = spawn_shell()
    assert printed(child, "R1", "hub.accepting") == "True"
    child.sendline("exit()")
    finish(child, transcript)


# -- the namespace, without a terminal ---------------------------------------------------------


class Twin(Command):
    domain = "one"


def _other_twin() -> type[Command]:
    class Twin(Command):  # noqa: F811 - the same class name in another domain, on purpose
        domain = "two"

    return Twin


async def handle_twin(command: Twin) -> str:
    return "one"


def test_namespace_puts_user_classes_by_name_and_builtins_under_bollydog() -> None:
    from example.handler import TaskCount as ExampleTaskCount

    hub = HubService(apps=[AppService.create_from(domain="example", handlers=["example.handler"])])
    other = _other_twin()

    async def handle_other(command: Command) -> str:
        return "two"

    hub.register(handle_twin, Handler(handle_other, (other,)))
    namespace = shell_namespace(hub)
    assert namespace["hub"] is hub
    assert namespace["example"] is hub.apps["example"]
    assert namespace["TaskCount"] is ExampleTaskCount
    assert namespace["bollydog"].TaskCount is builtins.TaskCount
    assert namespace["bollydog"].app is hub.apps["bollydog"]
    assert namespace["messages"].example.TaskList.__module__ == "example.handler"
    # An ambiguous class name is only reachable through its domain.
    assert "Twin" not in namespace
    assert namespace["messages"].one.Twin is Twin and namespace["messages"].two.Twin is other


async def test_missing_ptpython_is_a_missing_dependency_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ptpython.repl", None)
    with pytest.raises(MissingDependencyError, match="pip install 'bollydog\\[shell\\]'"):
        await shell_session(None)


def test_cli_prints_the_missing_dependency(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ptpython.repl", None)
    with pytest.raises(SystemExit) as exited:
        run_shell(None, include=[], exclude=[])
    assert exited.value.code == 1
    assert "needs the 'ptpython' package" in capsys.readouterr().err

"""CodeSwap inside a running hub: new code for what is dispatched after the swap, messages made
before it routed by name, new code checked before it touches the live registry, the restart
path for what a swap cannot carry, and the MCP tool list following the registry."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bollydog.models.service import AppService
from bollydog.reload.swap import CodeSwap, ReloadError
from bollydog.reload.watch import apply_change
from bollydog.service.app import HubService

GREET = '''\
from bollydog.models.base import Command, Event


class Greet(Command):
    who: str


class Greeted(Event):
    who: str


async def greet(command: Greet) -> str:
    return "{word} " + command.who
'''


class Project:
    """A package of its own in a temporary folder, first on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = f"swapapp_{uuid.uuid4().hex[:8]}"
        (root / self.package).mkdir()
        self.write("__init__.py", "")

    def write(self, name: str, text: str) -> Path:
        path = self.root / self.package / name
        path.write_text(textwrap.dedent(text))
        return path.resolve()

    def module(self, name: str) -> str:
        return f"{self.package}.{name}"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    sys.path.insert(0, str(tmp_path))
    made = Project(tmp_path)
    try:
        yield made
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == made.package]:
            del sys.modules[name]


def _hub(project: Project, *modules: str, app: type[AppService] = AppService) -> HubService:
    return HubService(apps=[app(domain="front", handlers=[project.module(m) for m in modules])])


async def test_what_is_dispatched_after_the_swap_runs_the_new_code_even_a_message_made_before(project):
    path = project.write("handlers.py", GREET.format(word="hello"))
    hub = _hub(project, "handlers")
    swap = CodeSwap(hub)
    async with hub:
        Old = hub.registry.resolve("front.greet")
        made_before = Old(who="ann")
        assert await hub.execute(Old(who="ann")) == "hello ann"
        path.write_text(GREET.format(word="hi"))
        report = swap.swap({path})
        assert report.path == "swap" and report.modules == [project.module("handlers")]
        New = hub.registry.resolve("front.greet")
        assert New is not Old
        assert await hub.execute(New(who="bob")) == "hi bob"
        assert await hub.execute(made_before) == "hi ann"  # routed by canonical name
        queued = await hub.put_message(Old(who="cy"))
        assert await queued.state == "hi cy"
        assert hub.code_version == 2


async def test_an_import_error_keeps_the_old_modules_and_says_where(project):
    path = project.write("handlers.py", GREET.format(word="hello"))
    hub = _hub(project, "handlers")
    swap = CodeSwap(hub)
    async with hub:
        old_module = sys.modules[project.module("handlers")]
        path.write_text(GREET.format(word="hi") + "\nraise RuntimeError('module-level failure')\n")
        with pytest.raises(ReloadError) as caught:
            swap.swap({path})
        assert "module-level failure" in str(caught.value)
        assert caught.value.where == f"{path}:{GREET.count(chr(10)) + 2}"
        assert sys.modules[project.module("handlers")] is old_module
        assert getattr(sys.modules[project.package], "handlers") is old_module
        greet = hub.registry.resolve("front.greet")
        assert await hub.execute(greet(who="ann")) == "hello ann"
        # The next good save applies.
        path.write_text(GREET.format(word="hi"))
        assert swap.swap({path}).path == "swap"
        assert await hub.execute(hub.registry.resolve("front.greet")(who="ann")) == "hi ann"


async def test_an_invalid_registry_is_refused_before_it_replaces_the_live_one(project):
    project.write("handlers.py", GREET.format(word="hello"))
    other = project.write("more.py", "X = 1\n")
    hub = _hub(project, "handlers", "more")
    swap = CodeSwap(hub)
    async with hub:
        live = dict(hub.registry.commands)
        other.write_text(textwrap.dedent(f"""\
            from {project.module("handlers")} import Greet

            async def greet_again(command: Greet) -> str:
                return "twice"
        """))
        with pytest.raises(ReloadError, match="two handlers"):
            swap.swap({other})
        assert hub.registry.commands == live
        assert await hub.execute(hub.registry.resolve("front.greet")(who="ann")) == "hello ann"


async def test_a_module_the_config_constructs_from_or_a_config_change_takes_the_restart_path(project, tmp_path):
    project.write("handlers.py", GREET.format(word="hello"))
    app_file = project.write("app.py", "from bollydog.models.service import AppService\n\nclass FrontApp(AppService):\n    pass\n")
    FrontApp = __import__(project.module("app"), fromlist=["FrontApp"]).FrontApp
    config = tmp_path / "config.yaml"
    config.write_text("front: {}\n")
    hub = _hub(project, "handlers", app=FrontApp)
    swap = CodeSwap(hub, config)
    handlers = (project.root / project.package / "handlers.py").resolve()
    assert swap.restart_reason({handlers}) is None
    assert swap.restart_reason({config.resolve()}) == "the config file config.yaml changed"
    assert "defines FrontApp, which the config constructs" in swap.restart_reason({app_file})
    restarts: list[str] = []
    report = apply_change(swap, {app_file}, restarts.append)
    assert report.path == "restart" and restarts == [report.reason]
    assert hub.reload_report == report.as_dict()


async def test_a_split_deployment_restarts_for_any_code_change(project):
    path = project.write("handlers.py", GREET.format(word="hello"))
    hub = _hub(project, "handlers")
    swap = CodeSwap(hub)
    greet = hub.registry.resolve("front.greet")
    other = type("Ship", (greet.__mro__[1],), {"__module__": "elsewhere", "__annotations__": {"to": str}})
    hub.registry.add_remote([other], "shipping", "appservice")
    assert "other processes serve some domains" in swap.restart_reason({path})


async def test_the_mcp_tool_list_follows_a_swap_and_clients_hear_list_changed(project):
    mcp = pytest.importorskip("mcp")
    from bollydog.entrypoint.mcp.app import McpService

    path = project.write("handlers.py", GREET.format(word="hello"))
    hub = _hub(project, "handlers")
    service = McpService(port=0, host="127.0.0.1")
    hub.add_entrypoint(service)
    swap = CodeSwap(hub)
    heard: list[Any] = []
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        heard.append(message)
        if "list_changed" in repr(message):
            changed.set()

    async with hub:
        async with mcp.Client(service.tools.server, mode="legacy", message_handler=on_message) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "front_greet" in names and "front_wave" not in names
            path.write_text(GREET.format(word="hi") + textwrap.dedent('''
                class Wave(Command):
                    pass

                async def wave(command: Wave) -> str:
                    return "o/"
            '''))
            swap.swap({path})
            await asyncio.wait_for(changed.wait(), 5)
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "front_wave" in names
            result = await client.call_tool("front_greet", {"who": "ann"})
            assert result.structured_content == {"result": "hi ann"}

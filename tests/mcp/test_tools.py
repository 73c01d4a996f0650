"""tools/list: one tool per Command, named, described and typed from the message and handler."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.mcp.app import McpService
from bollydog.entrypoint.mcp.tools import build_tools
from bollydog.errors import ConfigError
from bollydog.handlers import Handler, HandlerRegistry
from bollydog.models.base import RESERVED_FIELDS, Command
from bollydog.names import MessageFilter
from tests.mcp.conftest import started


async def tools_of(service: McpService, mode: str = "legacy") -> dict[str, Any]:
    async with Client(service.tools.server, mode=mode) as client:
        listed = await client.list_tools()
    return {tool.name: tool for tool in listed.tools}


async def test_every_command_is_a_tool_named_domain_underscore_name(service: McpService, mode: str) -> None:
    names = list(await tools_of(service, mode))
    demo = [n for n in names if n.startswith("tooldemo_")]
    assert demo == sorted(
        f"tooldemo_{n}" for n in
        ["echo", "add", "order", "boom", "countdown", "sleepy", "pause", "whoami", "wipe"]
    )
    assert "tooldemo_wiped" not in names  # an Event is not a tool
    assert {"bollydog_taskcount", "bollydog_tasklist", "bollydog_messages"} <= set(names)


async def test_description_is_the_class_then_the_handler_docstring(service: McpService) -> None:
    tools = await tools_of(service)
    assert tools["tooldemo_echo"].description == "Repeat a text.\n\nReturns the echoed text and its length."
    assert tools["tooldemo_add"].description == "Add two integers."


async def test_input_schema_is_the_message_schema_without_reserved_fields(service: McpService) -> None:
    tools = await tools_of(service, "auto")
    echo = tools["tooldemo_echo"].input_schema
    assert echo["type"] == "object"
    assert set(echo["properties"]) == {"text", "times"}
    assert echo["required"] == ["text"]
    assert echo["properties"]["times"]["maximum"] == 10
    assert echo["additionalProperties"] is False
    assert not RESERVED_FIELDS & set(echo["properties"])
    order = tools["tooldemo_order"].input_schema
    assert order["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line"}
    assert set(order["$defs"]["Line"]["properties"]) == {"sku", "quantity"}
    assert "required" not in tools["tooldemo_boom"].input_schema  # nothing to give


async def test_output_schema_is_the_result_or_wraps_it(service: McpService) -> None:
    tools = await tools_of(service)
    echo = tools["tooldemo_echo"].output_schema  # a model: an object, as it is
    assert echo["type"] == "object" and set(echo["properties"]) == {"echoed", "length"}
    assert tools["tooldemo_order"].output_schema["additionalProperties"] == {"type": "integer"}
    add = tools["tooldemo_add"].output_schema  # not an object: {"result": ...}
    assert add == {"type": "object", "properties": {"result": {"type": "integer"}}, "required": ["result"]}
    countdown = tools["tooldemo_countdown"].output_schema  # a generator: any value, wrapped
    assert countdown == {"type": "object", "properties": {"result": {}}, "required": ["result"]}


async def test_annotations_come_from_the_class_and_get_only_http_routes() -> None:
    http = HttpService(port=0, router_mapping={"tooldemo.add": {"methods": ["GET"]}})
    async with started(http) as (_, service):
        tools = await tools_of(service)
    assert tools["tooldemo_add"].annotations.read_only_hint is True  # GET only over HTTP
    assert tools["tooldemo_echo"].annotations is None  # GET and POST: no hint
    who = tools["tooldemo_whoami"].annotations
    assert (who.read_only_hint, who.idempotent_hint, who.destructive_hint) == (True, True, None)
    wipe = tools["tooldemo_wipe"].annotations
    assert (wipe.destructive_hint, wipe.title, wipe.read_only_hint) == (True, "Wipe all data", None)
    assert tools["bollydog_taskcount"].annotations.read_only_hint is True


async def test_a_class_attribute_overrides_the_get_only_default() -> None:
    http = HttpService(port=0, router_mapping={"tooldemo.wipe": {"methods": ["GET"]}, "tooldemo.whoami": {}})
    async with started(http) as (_, service):
        tools = await tools_of(service)
    assert tools["tooldemo_wipe"].annotations.read_only_hint is True  # the class does not say
    http = HttpService(port=0, router_mapping={"tooldemo.echo": {"methods": ["GET"]}})
    async with started(http, include=["tooldemo.echo"]) as (_, service):
        assert list(await tools_of(service)) == ["tooldemo_echo"]


async def test_include_and_exclude_select_tools() -> None:
    async with started(include=["tooldemo.*"], exclude=["tooldemo.wipe", "tooldemo.boom"]) as (_, service):
        names = set(await tools_of(service))
    assert "tooldemo_echo" in names and not {"tooldemo_wipe", "tooldemo_boom", "bollydog_taskcount"} & names


async def test_a_pattern_naming_nothing_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match=r"mcp.include: 'tooldemo.ecco' matches no message; did you mean tooldemo.echo"):
        async with started(include=["tooldemo.ecco"]):
            pass


# -- start-up errors, on the table itself ----------------------------------------------------


def registry_of(*commands: type[Command], domain: str = "x") -> HandlerRegistry:
    registry = HandlerRegistry()

    class App:
        pass

    app = App()
    app.domain = domain  # type: ignore[attr-defined]
    for command in commands:
        async def handle(message: Any) -> None:
            return None

        registry.register(Handler(handle, (command,)), app)
    return registry


def test_two_commands_with_one_tool_name_is_a_config_error() -> None:
    class Dotted(Command):
        name = "a_b"

    class Under(Command):
        name = "a.b"

    with pytest.raises(ConfigError, match=r"x\.a_b and x\.a\.b both become the tool name 'x_a_b'"):
        build_tools(registry_of(Dotted, Under), MessageFilter())


def test_a_tool_name_over_64_characters_is_a_config_error() -> None:
    class Long(Command):
        name = "m" * 70

    with pytest.raises(ConfigError, match=f"x.{'m' * 70} cannot be a tool: its tool name 'x_m{{3,}}' must be at most 64"):
        build_tools(registry_of(Long), MessageFilter())
    assert build_tools(registry_of(Long), MessageFilter(exclude=["x.m*"])).listing == []


def test_invalid_annotations_are_a_config_error() -> None:
    class Typo(Command):
        mcp_annotations = {"readonlyHint": True}

    with pytest.raises(ConfigError, match=r"Typo.mcp_annotations: 'readonlyHint': True is not a valid hint of x.typo"):
        build_tools(registry_of(Typo), MessageFilter())

    class NotBool(Command):
        mcp_annotations = {"readOnlyHint": "yes"}

    with pytest.raises(ConfigError, match="readOnlyHint \\(bool\\)"):
        build_tools(registry_of(NotBool), MessageFilter())

"""One message, one name: ``library.borrow`` on every surface, never ``libraryapp.borrow``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect

from bollydog.bootstrap import build
from bollydog.cli.shell import shell_namespace
from bollydog.errors import ConfigError, UnknownMessageError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.transport import wire

from tests.distribute.conftest import prefix, raw, redis_url  # noqa: F401  (fixtures)
from tests.naming.conftest import APPS, CONFIG
from libraryapp.messages import BookBorrowed, Borrow, ListBooks

CLI = [sys.executable, "-m", "bollydog.cli.main"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60)


def test_registry_names_messages_after_the_config_key():
    hub = build(CONFIG, entrypoints=False).hub
    registry = hub.registry
    assert registry.name_of(Borrow) == "library.borrow"
    assert registry.name_of(BookBorrowed) == "library.bookborrowed"  # same package as the handlers
    assert registry.resolve("library.borrow") is Borrow
    assert registry.resolve("LIBRARY.ListBooks") is ListBooks
    assert registry.resolve("borrow") is Borrow  # a bare name, when unique
    assert registry.resolve("libraryapp.messages.Borrow") is Borrow  # the seed's dotted path
    with pytest.raises(UnknownMessageError, match=r"'libraryapp.borrow'.*did you mean library.borrow"):
        registry.resolve("libraryapp.borrow")


def test_a_message_module_shared_by_two_domains_is_named_by_its_handler():
    hub = HubService(apps=[
        AppService.create_from(domain="first", handlers=["libraryapp.handlers"]),
    ])
    assert hub.registry.name_of(Borrow) == "first.borrow"
    assert Borrow.domain == "first"  # the class attribute says what every surface says


def test_cli_ls_and_execute_use_the_canonical_name():
    listed = _cli("ls", "--config", str(CONFIG), "--json")
    assert listed.returncode == 0, listed.stderr
    names = {m["message"] for m in json.loads(listed.stdout)["messages"]}
    assert {"library.borrow", "library.listbooks", "library.bookborrowed"} <= names
    assert not any(n.startswith("libraryapp.") for n in names)
    done = _cli("execute", "--config", str(CONFIG), "--message", "library.listbooks")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["dune", "emma", "ulysses"]
    wrong = _cli("execute", "--config", str(CONFIG), "--message", "libraryapp.listbooks")
    assert wrong.returncode == 2
    assert "library.listbooks" in wrong.stderr  # the error says what the name is


@pytest.mark.parametrize(
    "section, option",
    [("http", {"include": ["libraryapp.*"]}), ("http", {"router_mapping": {"libraryapp.borrow": {}}}),
     ("http", {"exclude": ["library.nosuch"]}), ("websocket", {"include": ["libraryapp.*"]})],
)
async def test_a_setting_naming_nothing_is_a_startup_error_listing_known_names(section, option):
    from bollydog.config import load_config

    config = load_config(CONFIG)
    config[section] = {**config[section], **option}
    with pytest.raises(ConfigError, match=r"matches no message.*known: .*library\.borrow"):
        build(config)  # checked once every domain is known, before anything starts


async def test_http_websocket_openapi_and_shell_speak_the_canonical_name():
    composition = build(CONFIG)
    hub = composition.hub
    http, ws = composition.entrypoints
    async with hub:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            assert (await client.get("/books")).json() == ["dune", "emma", "ulysses"]  # router_mapping applied
            assert (await client.post("/library/desk/listbooks")).status_code == 405  # methods: [GET]
            lent = await client.post("/library/desk/borrow", json={"title": "emma"})
            assert lent.status_code == 200, lent.text
            assert lent.json()["status"] == "lent"
            spec = (await client.get("/openapi.json")).json()
            operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
            assert "library.borrow.post" in operations
            tags = {op["tags"][0] for path, ops in spec["paths"].items() for op in ops.values() if not path.startswith("/_bollydog/")}
            assert tags == {"library"}
        async with connect(ws.url) as socket:
            await socket.send(json.dumps({"type": "subscribe", "id": "s", "topics": ["library.*"]}))
            assert json.loads(await socket.recv())["type"] == "subscribed"
            await socket.send(json.dumps({"name": "library.borrow", "id": 1, "title": "dune"}))
            frames = [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(6)]
            topics = {f.get("topic") for f in frames if f["type"] == "message"}
            assert {"library.borrow", "library.bookborrowed"} <= topics
            result = next(f for f in frames if f["type"] == "result")
            assert result["data"]["status"] == "lent"
            await socket.send(json.dumps({"name": "libraryapp.borrow", "id": 2, "title": "dune"}))
            refused = json.loads(await asyncio.wait_for(socket.recv(), 5))
            assert refused["type"] == "error" and "library.borrow" in refused["message"]
        namespace = shell_namespace(hub)
        assert namespace["messages"].library.Borrow is Borrow
        assert not hasattr(namespace["messages"], "libraryapp")


def test_wire_format_carries_and_reads_the_canonical_name():
    hub = build(CONFIG, entrypoints=False).hub
    fields = wire.encode(Borrow(title="dune"), hub.registry.name_of(Borrow))
    assert fields["name"] == "library.borrow"
    assert wire.resolve(hub.registry, "library.borrow") is Borrow
    with pytest.raises(wire.WireError, match="libraryapp.borrow"):
        wire.resolve(hub.registry, "libraryapp.borrow")


async def test_span_names_are_canonical():
    from bollydog.telemetry import TelemetryPlugin

    hub = build(CONFIG, entrypoints=False).hub
    plugin = TelemetryPlugin(traces_exporter="memory", metrics_exporter="none", install_global=False).install(hub)
    async with hub:
        await hub.execute(ListBooks())
    names = {span.name for span in plugin.span_exporter.get_finished_spans()}
    assert "library.listbooks" in names


async def test_the_examples_second_domain_works_over_websocket():
    # example.todo lives in package "example" but is served by the config key "todo".
    from bollydog.config import load_config

    config = load_config("example/config.yaml")
    config["websocket"]["port"] = 0
    composition = build({k: v for k, v in config.items() if k != "http"})
    async with composition.hub:
        (ws,) = composition.entrypoints
        async with connect(ws.url) as socket:
            await socket.send(json.dumps({"name": "todo.addtask", "id": 1, "title": "over ws"}))
            frames = [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(2)]
    assert frames[0]["type"] == "accepted"
    assert frames[1]["type"] == "result" and frames[1]["data"]["title"] == "over ws"


async def test_split_over_redis_speaks_the_canonical_name(redis_url, prefix, raw):
    """The library domain in one process, HTTP and WebSocket in another: same names, same answers."""
    from bollydog.config import load_config

    config = load_config(CONFIG)
    config["distribute"] = {"app": "bollydog.transport.redis.RedisTransport", "url": redis_url, "prefix": prefix,
                            "block_ms": 200}
    worker = build(config, include=["library"], entrypoints=False)
    front = build(config, exclude=["library"])
    async with worker.hub, front.hub:
        assert "library" not in front.hub.apps and front.hub.registry.name_of(Borrow) == "library.borrow"
        http, ws = front.entrypoints
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            assert (await client.get("/books")).json() == ["dune", "emma", "ulysses"]
            lent = await client.post("/library/desk/borrow", json={"title": "emma"})
            assert lent.status_code == 200 and lent.json()["status"] == "lent", lent.text
        async with connect(ws.url) as socket:
            await socket.send(json.dumps({"name": "library.borrow", "id": 1, "title": "dune"}))
            frames = [json.loads(await asyncio.wait_for(socket.recv(), 5)) for _ in range(4)]
        assert [f["type"] for f in frames] == ["accepted", "partial", "partial", "result"]
        assert frames[-1]["data"]["status"] == "lent"
    # The domain's consumer group is named after the config key, not the package.
    groups = {g["name"] for g in await raw.xinfo_groups(f"{prefix}:stream:library:normal")}
    assert groups == {"library"}


def test_a_package_name_where_the_config_key_belongs_suggests_the_right_name():
    from bollydog.names import suggest

    assert suggest("pantry.store", ["kitchen.store", "kitchen.stored", "bollydog.taskcount"]) == (
        "; did you mean kitchen.store?"
    )
    assert suggest("kitchen.stor", ["kitchen.store"]) == "; did you mean kitchen.store?"
    assert suggest("zzz", ["kitchen.store"]) == ""

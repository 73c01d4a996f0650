import pytest

from bollydog.bootstrap import build
from bollydog.config import loads_config
from bollydog.errors import ConfigError, NoHandlerError
from tests.core.fake_infrastructure import LoopbackTransport, Recorder, TaggingPlugin
from tests.core.sample_messages import Add, Imported, Mul

CONFIG = """
math:
  handlers: [tests.core.sample_handlers]
  protocol:
    module: !module bollydog.adapters.memory.MemoryProtocol
other:
  app: !module bollydog.models.service.AppService
  handlers: [tests.core.sample_messages]
recorder:
  app: !module tests.core.fake_infrastructure.Recorder
"""


async def test_config_builds_apps_protocols_and_entrypoints():
    composition = build(loads_config(CONFIG))
    hub = composition.hub
    assert {a.domain for a in composition.apps} == {"math", "other"}
    assert hub.apps["math"].protocol is not None
    async with hub:
        assert Recorder.started_with_hub is hub
        assert await hub.execute(Add(a=2, b=2)) == 4


def test_include_and_exclude_select_sections():
    assert [a.domain for a in build(loads_config(CONFIG), include=["math"]).apps] == ["math"]
    composition = build(loads_config(CONFIG), exclude=["math", "recorder"])
    assert [a.domain for a in composition.apps] == ["other"] and composition.entrypoints == []
    with pytest.raises(ConfigError, match="'nope' is not in the config"):
        build(loads_config(CONFIG), include=["nope"])


def test_entrypoints_false_builds_apps_only():
    assert build(loads_config(CONFIG), entrypoints=False).entrypoints == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x:\n  app: !module tests.core.missing.Thing\n", "x.app"),
        ("x:\n  app: !module json.dumps\n", "x.app"),
        ("x:\n  handlers: nope\n", "x.handlers"),
        ("x:\n  protocol:\n    module: !module json.JSONDecoder\n", "x.protocol.module"),
        ("x: 3\n", "x: expected a mapping"),
    ],
)
def test_config_errors_point_at_the_key(text, expected):
    with pytest.raises(ConfigError, match=expected):
        build(loads_config(text))


async def test_transport_section_routes_excluded_domains_and_ignores_include():
    text = CONFIG + """
distribute:
  app: !module tests.core.fake_infrastructure.LoopbackTransport
  reply: 42
"""
    composition = build(loads_config(text), include=["other"])
    hub = composition.hub
    assert isinstance(hub.transport, LoopbackTransport)
    assert hub.transport.serves(Add) and hub.transport.remote[Add] == {"math"}
    async with hub:
        assert await hub.execute(Mul(a=3, b=3)) == 42
    assert [m.name for m in hub.transport.requests] == ["mul"]


async def test_plugin_section_adds_an_outermost_middleware_in_every_process():
    text = CONFIG + """
telemetry:
  app: !module tests.core.fake_infrastructure.TaggingPlugin
"""
    composition = build(loads_config(text), include=["math"])
    hub = composition.hub
    async with hub:
        await hub.execute(Add(a=1, b=1))
        with pytest.raises(NoHandlerError):
            await hub.execute(Imported())  # its domain is excluded and there is no transport
        await hub.execute(Mul(a=1, b=1))
    (plugin,) = [d for d in hub._children if isinstance(d, TaggingPlugin)]
    assert plugin.seen == ["add", "mul"]


def test_config_file_inside_a_package_makes_the_package_importable(tmp_path, monkeypatch):
    package = tmp_path / "proj" / "shopx"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(
        "from bollydog.models.base import Command\n"
        "class Hello(Command):\n    pass\n"
        "async def hello(c: Hello) -> str:\n    return 'hi'\n"
    )
    (package / "config.yaml").write_text("shopx:\n  handlers: [shopx.handlers]\n")
    monkeypatch.chdir(package)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    composition = build(package / "config.yaml")
    assert [m.name for m in composition.hub.registry.message_classes() if m.domain == "shopx"] == ["hello"]


def test_the_service_builder_and_a_config_section_build_the_same_app(tmp_path):
    from bollydog.adapters.file import FileProtocol, FileUnitOfWork
    from bollydog.builder import ServiceBuilder
    from bollydog.errors import ConfigError

    in_code = (
        ServiceBuilder("notes").handlers("tests.core.sample_handlers")
        .unit_of_work(FileUnitOfWork, root=str(tmp_path)).protocol(FileProtocol).options(name="pad").build()
    )
    section = {
        "handlers": ["tests.core.sample_handlers"], "name": "pad",
        "unit_of_work": {"module": "bollydog.adapters.file.FileUnitOfWork", "root": str(tmp_path)},
        "protocol": {"module": "bollydog.adapters.file.FileProtocol"},
    }
    from_config = build({"notes": section}, entrypoints=False).hub.apps["notes"]
    for app in (in_code, from_config):
        assert (app.domain, app.name, app.handlers) == ("notes", "pad", ["tests.core.sample_handlers"])
        assert type(app.protocol) is FileProtocol and type(app.unit_of_work) is FileUnitOfWork
        assert app.protocol.unit_of_work is app.unit_of_work
    with pytest.raises(ConfigError, match="notes.protocol: .* is not a Protocol class or instance"):
        ServiceBuilder("notes").protocol(FileUnitOfWork)
    with pytest.raises(ConfigError, match="notes.handlers: expected a list"):
        build({"notes": {"handlers": "tests.core.sample_handlers"}}, entrypoints=False)

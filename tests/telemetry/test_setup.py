"""Turning telemetry on: config section, OTEL_* variables, missing SDK; off costs nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bollydog.bootstrap import build
from bollydog.config import loads_config
from bollydog.errors import ConfigError, MissingDependencyError
from bollydog.hub.middleware import RetryMiddleware, TimeoutMiddleware, TransactionMiddleware
from bollydog.telemetry import TelemetryMiddleware, TelemetryPlugin, plugin_from_environment
from tests.telemetry.conftest import HANDLERS
from tests.telemetry.traced_handlers import Reserve

CONFIG = f"""
shop:
  handlers: [{HANDLERS}]
"""


def plugins_of(hub) -> list[TelemetryPlugin]:
    return [child for child in hub._children if isinstance(child, TelemetryPlugin)]


def test_without_config_or_variables_telemetry_is_not_installed():
    assert plugin_from_environment() is None
    hub = build(loads_config(CONFIG)).hub
    assert {type(layer) for layer in hub.middlewares} == {RetryMiddleware, TimeoutMiddleware, TransactionMiddleware}
    assert len(hub.middlewares) == 3  # the built-ins only: no telemetry layer, no cost
    assert plugins_of(hub) == []


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, {"traces": ["console"], "metrics": [], "logs": []}),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, {"traces": [], "metrics": ["otlp"], "logs": []}),
        ({"OTEL_LOGS_EXPORTER": "console,otlp"}, {"traces": [], "metrics": [], "logs": ["console", "otlp"]}),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_LOGS_EXPORTER": "none"},
            {"traces": ["otlp"], "metrics": ["otlp"], "logs": []},
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, {"traces": ["otlp"], "metrics": [], "logs": []}),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, None),
    ],
)
def test_plugin_from_environment(environ, expected):
    plugin = plugin_from_environment(environ)
    if expected is None:
        assert plugin is None
    else:
        assert plugin.signals == expected


def test_bootstrap_adds_the_environment_plugin_as_outermost_layer(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    hub = build(loads_config(CONFIG)).hub
    (plugin,) = plugins_of(hub)
    assert hub.middlewares[0] is plugin.middleware
    assert isinstance(plugin.middleware, TelemetryMiddleware)


def test_a_logs_only_plugin_adds_no_dispatch_layer():
    plugin = TelemetryPlugin(logs_exporter="memory")
    assert plugin.middleware is None


async def test_config_section_configures_the_plugin(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # a section wins over the variables
    text = CONFIG + """
telemetry:
  app: !module bollydog.telemetry.TelemetryPlugin
  service_name: shop-service
  traces_exporter: memory
  install_global: false
"""
    hub = build(loads_config(text), include=["shop"]).hub
    (plugin,) = plugins_of(hub)
    assert plugin.signals["traces"] == ["memory"] and hub.middlewares[0] is plugin.middleware
    async with hub:
        assert plugin.hub is hub  # found the hub that started it
        command = Reserve(sku="cfg")
        await hub.execute(command)
    (span,) = plugin.span_exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "shop-service"
    assert "%016x" % span.context.span_id == command.span_id


def test_unknown_exporter_names_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown exporter 'jaeger'"):
        TelemetryPlugin(traces_exporter="jaeger")
    with pytest.raises(ConfigError, match="unknown option.*traces_exporte\\b"):
        build(loads_config(CONFIG + "telemetry:\n  app: !module bollydog.telemetry.TelemetryPlugin\n  traces_exporte: otlp\n"))


async def test_grpc_protocol_is_refused_with_a_hint(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    plugin = TelemetryPlugin(traces_exporter="otlp", install_global=False)
    with pytest.raises(ConfigError, match="http/protobuf"):
        await plugin.on_start()


async def test_console_exporter_prints_spans_on_stderr(capsys):
    from bollydog.service.app import HubService

    hub = HubService()
    hub.register(_hello)
    TelemetryPlugin(traces_exporter="console", install_global=False).install(hub)
    async with hub:
        await hub.execute(Hello())
    printed = capsys.readouterr()
    assert '"name": "tests.hello"' in printed.err
    assert printed.out == ""  # stdout belongs to the program (bollydog execute prints results there)


def test_importing_needs_only_the_api_and_a_missing_sdk_is_named():
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class NoSdk(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, NoSdk())
        import bollydog.telemetry as telemetry
        from bollydog.errors import MissingDependencyError

        assert telemetry.plugin_from_environment({}) is None
        assert telemetry.TelemetryPlugin().middleware is None  # nothing asked for: fine
        for make in (
            lambda: telemetry.plugin_from_environment({"OTEL_TRACES_EXPORTER": "otlp"}),
            lambda: telemetry.TelemetryPlugin(traces_exporter="console"),
        ):
            try:
                make()
            except MissingDependencyError as exc:
                assert (exc.feature, exc.extra, exc.missing) == ("telemetry", "telemetry", "opentelemetry-sdk"), exc
            else:
                raise AssertionError("no MissingDependencyError")
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_missing_dependency_error_type():
    error = MissingDependencyError("telemetry", "telemetry", "opentelemetry-sdk")
    assert "pip install 'bollydog[telemetry]'" in str(error)


from bollydog.models.base import Command  # noqa: E402


class Hello(Command):
    domain = "tests"


async def _hello(command: Hello) -> str:
    return "hi"

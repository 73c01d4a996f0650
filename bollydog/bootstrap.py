"""The composition root: turns a configuration into a hub, its apps and its entrypoints.

Configuration format (YAML or JSON), one top-level key per domain or entrypoint::

    example:                                   # domain name
      app: !module example.app.ExampleService  # an AppService (subclass)
      handlers: [example.handler]              # modules searched for handlers
      unit_of_work: {module: !module bollydog.adapters.memory.MemoryUnitOfWork}
      protocol: {module: !module bollydog.adapters.memory.MemoryProtocol}
      name: exampleservice                     # other keys: the app class's constructor
                                               # options; any other is an error
    http:
      app: !module bollydog.entrypoint.http.app.HttpService   # an entrypoint
      port: 8000                                               # constructor options

This is the only module that names concrete adapters, transports and entrypoints.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mode import Service

from bollydog.builder import ServiceBuilder, check_options, check_section, construct, resolve_ref
from bollydog.config import ModuleRef, load_config, location
from bollydog.errors import ConfigError
from bollydog.handlers import discover, messages_in
from bollydog.hub.transport import InProcessTransport, Transport
from bollydog.models.service import AppService
from bollydog.schedule import Scheduler, declared_schedules
from bollydog.service.app import HubService
from bollydog.settings import get_settings
from bollydog.types import Entrypoint, HubPlugin

__all__ = ["Composition", "Entrypoint", "HubPlugin", "build", "select"]  # port bases re-exported


@dataclass
class Composition:
    """What :func:`build` made: the hub (apps registered) and the entrypoints around it."""

    hub: HubService
    apps: list[AppService] = field(default_factory=list)
    entrypoints: list[Service] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: The schedulers (a config section, or made for Commands declaring schedules), resolved.
    schedulers: list[Scheduler] = field(default_factory=list)


def build(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    hub_options: Mapping[str, Any] | None = None,
    entrypoints: bool = True,
    consumers: bool = True,
) -> Composition:
    """Build a hub from a config file or dict; ``BOLLYDOG_HANDLERS`` adds config-less handlers.

    ``include``/``exclude`` select top-level keys to run in this process; the others are not
    constructed (their ``app`` class is imported to recognise transports and plugins, which run
    everywhere; with a transport, their handler modules are imported to route their messages).
    ``entrypoints=False`` builds the apps only (``bollydog execute`` and ``ls`` serve nothing).
    ``consumers=False`` makes the transport a client only (one-shot runs: ``bollydog execute``,
    ``shell``): it sends messages of the domains run elsewhere and takes their replies, but joins
    no consumer group, so no other process's work is delivered to this one.
    """
    if config is None:
        add_import_roots(None)  # BOLLYDOG_HANDLERS modules are found from the current folder
        sections: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        sections = dict(config)
    else:
        path = Path(config)
        add_import_roots(path)
        sections = load_config(path)
    selected = select(sections, include, exclude)
    hub = HubService(**dict(hub_options or {}))
    composition = Composition(hub=hub, config=sections)
    # Every domain of the file, in file order, whether it runs here or not: the order settles
    # which domain names a message claimed by several, identically in every process.
    for key, section in sections.items():
        if _is_remote_domain(section):
            # Every domain section is checked, run here or not: a misspelt key fails everywhere.
            check_section(
                key, section, _resolve(section.get("app"), f"{key}.app") or AppService, at=location(sections, key)
            )
            hub.registry.declare_domain(section.get("domain", key), _handler_modules(section))
    targets = {
        key: _target(key, section)
        for key, section in sections.items()
        if key in selected or _is_infrastructure(section)
    }
    if not any(issubclass(t, HubPlugin) and not issubclass(t, Scheduler) for t in targets.values()):
        plugin = _telemetry_from_environment()
        if plugin is not None:
            _add_infrastructure(hub, plugin)
    # Infrastructure first (stable order otherwise): tracing and the transport must be in place
    # before any entrypoint starts taking requests.
    ordered = sorted(targets.items(), key=lambda item: not issubclass(item[1], (Transport, HubPlugin)))
    entrypoint_keys: list[str] = []  # the config key of each of composition.entrypoints
    for key, target in ordered:
        if issubclass(target, Scheduler):
            composition.schedulers.append(_construct(key, sections[key], target))
        elif issubclass(target, (Transport, HubPlugin)):
            _add_infrastructure(hub, _construct(key, sections[key], target))
        elif issubclass(target, AppService):
            app = _construct(key, sections[key], target)
            hub.add_app(app)
            composition.apps.append(app)
        elif entrypoints:
            entrypoint = _construct(key, sections[key], target)
            hub.add_entrypoint(entrypoint)
            composition.entrypoints.append(entrypoint)
            entrypoint_keys.append(key)
    hub.transport.consume = consumers
    if not isinstance(hub.transport, InProcessTransport):
        # Domains run by other processes: their handler modules say which messages go there.
        for key, section in sections.items():
            if key not in selected and _is_remote_domain(section):
                domain = section.get("domain", key)
                modules = _handler_modules(section)
                message_types = {t for module in modules for h in discover(module) for t in h.message_types}
                hub.transport.add_remote(domain, message_types)
                hub.registry.add_remote(message_types, domain, _service_name(section))
                for module in modules:
                    for message_type in messages_in(module):
                        hub.registry.add_message(message_type)
    env_modules = get_settings().handler_modules
    if env_modules:
        app = AppService(domain="handlers", handlers=env_modules)
        hub.add_app(app)
        composition.apps.append(app)
    _add_schedulers(composition, entrypoints)
    for key, served in zip(entrypoint_keys, composition.entrypoints):
        if isinstance(served, Entrypoint):
            _check_names(served, key, sections[key], sections)
    return composition


def _check_names(entrypoint: Entrypoint, key: str, section: Any, sections: Mapping[str, Any]) -> None:
    """``entrypoint.check_names()``, its errors told by the section's own key and the option's
    line: an entrypoint names its settings by its default section (``websocket.include: ...``)."""
    try:
        entrypoint.check_names()
    except ConfigError as exc:
        text = str(exc)
        default = getattr(type(entrypoint).options_model, "section", None)
        at = location(sections, key)
        if default and text.startswith((f"{default}.", f"{default}:")):
            option = text[len(default) + 1:].partition(":")[0].partition(".")[0]
            at = location(section, option) or at
            text = key + text[len(default):]
        raise ConfigError(f"{at}: {text}" if at else text) from None


def _add_schedulers(composition: Composition, entrypoints: bool) -> None:
    """Resolve the schedules now (a bad name is a start-up error); a scheduler ticks only in a
    process that serves (not under ``execute``), started with the entrypoints."""
    hub = composition.hub
    if not composition.schedulers and any(declared_schedules(s.message) for s in hub.registry.served_commands()):
        composition.schedulers.append(Scheduler())
    for scheduler in composition.schedulers:
        scheduler.plan(hub)
        if entrypoints:
            hub.add_entrypoint(scheduler)


def select(
    sections: Mapping[str, Any], include: Iterable[str] | None, exclude: Iterable[str] | None
) -> dict[str, Any]:
    """The sections to run here: ``include`` (all when empty) minus ``exclude``.

    Only domains and entrypoints can be picked: transports and plugins (``distribute``,
    ``telemetry``, a scheduler) run in every process, so naming one is an error, as is a name
    that is not in the config."""
    wanted = [n for n in (include or []) if n]
    unwanted = [n for n in (exclude or []) if n]
    if wanted or unwanted:
        infrastructure = {k for k, v in sections.items() if _is_infrastructure(v)}
        names = [k for k in sections if k not in infrastructure]
        for name in [*wanted, *unwanted]:
            if name in infrastructure:
                raise ConfigError(
                    f"--include/--exclude name '{name}' is an infrastructure section (a transport or "
                    f"plugin): it runs in every process and cannot be picked; pick among: {', '.join(names)}"
                )
            if name not in sections:
                raise ConfigError(
                    f"--include/--exclude name '{name}' is not in the config (known: {', '.join(names)})"
                )
    return {
        k: v for k, v in sections.items() if (not wanted or k in wanted) and k not in unwanted
    }


def add_import_roots(config_path: Path | None) -> None:
    """Make the user's packages importable, as running from the project root would.

    The current directory comes first; then, when the config sits inside a package (say
    ``example/config.yaml`` next to ``example/__init__.py``), the folder holding that package,
    so ``bollydog execute --config=./config.yaml`` also works from inside ``example/``.
    """
    roots = [Path.cwd()]
    if config_path is not None:
        folder = config_path.resolve().parent
        while (folder / "__init__.py").exists() and folder.parent != folder:
            folder = folder.parent
        roots.append(folder)
    for root in roots:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))


def _target(key: str, section: Any) -> type:
    """The class a section constructs: its ``app`` (default AppService)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{key}: expected a mapping with an 'app' key, got {type(section).__name__}")
    target = _resolve(section.get("app"), f"{key}.app")
    if target is None:
        return AppService
    if not isinstance(target, type) or not issubclass(target, (Service, Transport)):
        raise ConfigError(f"{key}.app: {target!r} is not an AppService, entrypoint, transport or plugin class")
    return target


def _is_infrastructure(section: Any) -> bool:
    """Transports and hub plugins run in every process, whatever --include/--exclude say."""
    if not isinstance(section, Mapping) or section.get("app") is None:
        return False
    ref = section["app"]
    target = ref.resolve() if isinstance(ref, ModuleRef) else _resolve(ref, "app")
    return isinstance(target, type) and issubclass(target, (Transport, HubPlugin))


def _is_remote_domain(section: Any) -> bool:
    if not isinstance(section, Mapping):
        return False
    target = _resolve(section.get("app"), "app") if section.get("app") is not None else AppService
    return isinstance(target, type) and issubclass(target, AppService)


def _handler_modules(section: Mapping[str, Any]) -> list[str]:
    """The handler modules a domain section serves: its app class's defaults, then its own."""
    target = _resolve(section.get("app"), "app") if section.get("app") is not None else AppService
    handlers = section.get("handlers") or []
    own = handlers if isinstance(handlers, list) else []
    defaults = list(getattr(target, "default_handlers", ()))
    return [*defaults, *(h for h in own if h not in defaults)]


def _service_name(section: Mapping[str, Any]) -> str:
    """The ``name`` an AppService built from ``section`` would have (the URL's middle part)."""
    target = _resolve(section.get("app"), "app") if section.get("app") is not None else AppService
    return str(section.get("name") or target.name or target.__name__).lower()


def _add_infrastructure(hub: HubService, obj: Any) -> None:
    if isinstance(obj, Transport):
        hub.transport = obj
        return
    if obj.middleware is not None:
        hub.add_middleware(obj.middleware)
    hub.add_dependency(obj)


def _telemetry_from_environment() -> Any:
    """Telemetry configured by the standard ``OTEL_*`` variables alone, if the module is there."""
    try:
        from bollydog.telemetry import plugin_from_environment
    except ImportError:
        return None
    return plugin_from_environment()


def _construct(key: str, section: Mapping[str, Any], target: type) -> Any:
    if issubclass(target, AppService):
        return ServiceBuilder.from_section(key, section, target).build()
    if getattr(target, "options_model", None) is not None:
        check_options(target, section, key, getattr(section, "lines", None) or {}, keys=("app",), skip=("app",))
    return construct(target, {k: v for k, v in section.items() if k != "app"}, where=key)


def _resolve(value: Any, key: str) -> Any:
    return resolve_ref(value, key)

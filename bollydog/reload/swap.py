"""Swapping handler code inside a running hub.

A change to the source of handler and message modules is applied in one step on the loop:

1. each changed file is compiled (a syntax error stops here, with ``file:line``);
2. the changed modules and the modules that import from them (in the same packages) are
   imported afresh, as new module objects, in their original import order; the old ones stay
   what running handlers execute, and come back into ``sys.modules`` if an import fails;
3. a new registry is built from the apps' handler modules, and validated as at start
   (a Command with two handlers, a domain declared twice);
4. only then is it swapped in (:meth:`HandlerRegistry.replace_with`), and the entrypoints are
   told (:meth:`Entrypoint.registry_changed <bollydog.types.Entrypoint.registry_changed>`): HTTP rebuilds its routes and
   OpenAPI, MCP its tool list (clients get ``tools/list_changed``).

Messages already running finish on the old code; every message dispatched after the swap runs the
new code, messages made before it included (they are routed by canonical name).

What a swap cannot carry is said by :meth:`CodeSwap.restart_reason`: the config file, a module
that defines a class the config constructs (an app, unit of work, protocol, entrypoint,
transport: they hold connections and state), a module outside the handler packages, and any
code change when another process serves some domains (the transport routes by class).
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bollydog.errors import BollydogError
from bollydog.handlers import discover, messages_in
from bollydog.registry import HandlerRegistry

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.service.app import HubService

__all__ = ["CodeSwap", "ReloadError", "SwapReport"]

log = logging.getLogger("bollydog.reload")


class ReloadError(BollydogError):
    """New code that cannot be swapped in: a syntax or import error, or an invalid registry.
    ``where`` is ``file:line`` when the error has one."""

    code = "ReloadError"

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


@dataclass
class SwapReport:
    """What the last reload did: ``path`` is ``swap``, ``restart`` or ``failed``."""

    path: str
    version: int
    modules: list[str] = field(default_factory=list)
    reason: str = ""
    error: str | None = None
    where: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "code_version": self.version, "modules": self.modules,
            "reason": self.reason, "error": self.error, "where": self.where,
        }


class CodeSwap:
    """Swaps the handler code of ``hub`` (see the module documentation).

    ``config_file``: the configuration, whose changes always take the restart path.
    """

    def __init__(self, hub: "HubService", config_file: Path | None = None) -> None:
        self.hub = hub
        self.config_file = config_file.resolve() if config_file is not None else None
        #: Bumped by every swap; handler spans carry it (``bollydog.code_version``).
        self.version = 1
        self.last: SwapReport | None = None
        #: Called after each swap (the shell refreshes its namespace).
        self.listeners: list[Callable[[], None]] = []

    # -- what is watched ------------------------------------------------------------------------

    def packages(self) -> list[str]:
        """Top-level packages of the apps' handler modules."""
        roots = {module.split(".")[0] for app in self.hub.apps.values() for module in app.handlers}
        roots.discard("bollydog")  # the framework's own built-in handlers are not user code
        return sorted(roots)

    def watch_paths(self) -> list[Path]:
        """The folders (or single-file modules) of :meth:`packages`, and the config file."""
        paths: list[Path] = []
        for package in self.packages():
            module = sys.modules.get(package)
            source = getattr(module, "__file__", None)
            if source is None:
                continue
            path = Path(source).resolve()
            paths.append(path.parent if path.name == "__init__.py" else path)
        if self.config_file is not None:
            paths.append(self.config_file)
        return paths

    def loaded_modules(self) -> dict[Path, str]:
        """Source file -> module name, for the loaded modules of :meth:`packages`."""
        roots = set(self.packages())
        found: dict[Path, str] = {}
        for name, module in list(sys.modules.items()):
            source = getattr(module, "__file__", None)
            if name.split(".")[0] in roots and source and source.endswith(".py"):
                found[Path(source).resolve()] = name
        return found

    # -- deciding -------------------------------------------------------------------------------

    def restart_reason(self, changed: set[Path]) -> str | None:
        """Why ``changed`` files need a new process, or None when a swap carries them."""
        if self.config_file is not None and self.config_file in changed:
            return f"the config file {self.config_file.name} changed"
        loaded = self.loaded_modules()
        changed_modules = {loaded[p] for p in changed if p in loaded}
        if not changed_modules:
            return None
        if self.hub.registry.remote or getattr(self.hub.transport, "remote", None):
            return "other processes serve some domains (a split deployment): the transport routes by class"
        stateful = self._stateful_modules()
        for module in sorted(self._with_dependents(changed_modules)):
            if module in stateful:
                return f"{module} defines {stateful[module]}, which the config constructs (it holds state)"
        return None

    def changed_modules(self, changed: set[Path]) -> list[str]:
        """The loaded modules of ``changed`` files (new or unloaded files are not modules yet)."""
        loaded = self.loaded_modules()
        return sorted(loaded[p] for p in changed if p in loaded)

    def _stateful_modules(self) -> dict[str, str]:
        """Modules of the objects the config constructed -> what they define."""
        hub = self.hub
        objects: list[Any] = [*hub.entrypoints, hub.transport]
        for app in hub.apps.values():
            objects += [app, app.protocol, getattr(app.protocol, "unit_of_work", None)]
        found: dict[str, str] = {}
        for obj in objects:
            if obj is not None:
                cls = type(obj)
                found.setdefault(cls.__module__, f"{cls.__qualname__}")
        return found

    def _with_dependents(self, modules: set[str]) -> set[str]:
        """``modules`` and the loaded modules of the same packages importing from them."""
        roots = set(self.packages())
        candidates = {
            name: module for name, module in list(sys.modules.items())
            if name.split(".")[0] in roots and isinstance(module, types.ModuleType)
        }
        affected = set(modules)
        grew = True
        while grew:
            grew = False
            for name, module in candidates.items():
                if name in affected:
                    continue
                for value in vars(module).values():
                    source: str | None
                    if isinstance(value, types.ModuleType):
                        source = value.__name__
                        if source.startswith(f"{name}."):  # a package's own submodule: not an import of it
                            continue
                    else:
                        source = getattr(value, "__module__", None)
                    if source in affected:
                        affected.add(name)
                        grew = True
                        break
        return affected

    # -- swapping -------------------------------------------------------------------------------

    def swap(self, changed: set[Path]) -> SwapReport:
        """Swap in the code of ``changed`` files; raises :class:`ReloadError` and leaves the old
        code serving when the new code does not compile, import or register."""
        modules = self.changed_modules(changed)
        if not modules:
            return SwapReport("swap", self.version, [], "no loaded module changed")
        for module in modules:
            _compile(sys.modules[module])
        affected = self._with_dependents(set(modules))
        order = [name for name in sys.modules if name in affected]  # the original import order
        old = {name: sys.modules[name] for name in order}
        parents = {name: _parent_binding(name) for name in order}
        for name in order:
            del sys.modules[name]
        before = set(sys.modules)
        try:
            for name in order:
                if name not in sys.modules:  # an earlier import may have imported it already
                    importlib.import_module(name)
            fresh = self._build_registry()
        except BaseException as exc:
            _restore(old, parents, before)
            if isinstance(exc, ReloadError):
                raise
            raise ReloadError(f"{type(exc).__name__}: {exc}", _where(exc)) from None
        self.hub.registry.replace_with(fresh)
        self.hub.registry.bind_domains()
        self.hub.dispatcher.invalidate()
        self.version += 1
        self.hub.code_version = self.version
        for entrypoint in self.hub.entrypoints:
            entrypoint.registry_changed()
        for listener in self.listeners:
            listener()
        return SwapReport("swap", self.version, order)

    def _build_registry(self) -> HandlerRegistry:
        """A registry made from the apps' handler modules as they are now in ``sys.modules``,
        the domains declared in the same order; handlers registered without a module are kept."""
        live, fresh = self.hub.registry, HandlerRegistry()
        for domain, (modules, _) in live._domains.items():
            fresh.declare_domain(domain, modules)
        module_handlers: set[Any] = set()
        try:
            for app in self.hub.apps.values():
                for module in app.handlers:
                    found = discover(module)
                    fresh.register_all(found, app)
                    module_handlers.update(h.func for h in found)
                    for message_type in messages_in(module):
                        fresh.add_message(message_type)
        except BollydogError as exc:
            raise ReloadError(str(exc)) from None
        # Handlers registered directly (hub.register) whose code was not reloaded stay.
        reloaded_from = {app_module for app in self.hub.apps.values() for app_module in app.handlers}
        for handler in {*live.commands.values(), *(h for hs in live.events.values() for h in hs)}:
            if handler.func.__module__ not in reloaded_from and handler.func not in module_handlers:
                fresh.register(handler, handler.app)
        return fresh


def _compile(module: types.ModuleType) -> None:
    source_file = getattr(module, "__file__", None)
    if not source_file:
        return
    try:
        source = Path(source_file).read_bytes()
        compile(source, source_file, "exec")
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}"
        raise ReloadError(f"SyntaxError: {exc.msg} ({where})", where) from None
    except OSError as exc:
        raise ReloadError(f"cannot read {source_file}: {exc.strerror or exc}") from None


def _parent_binding(name: str) -> tuple[types.ModuleType, str] | None:
    parent, _, attr = name.rpartition(".")
    module = sys.modules.get(parent) if parent else None
    return (module, attr) if module is not None else None


def _restore(
    old: dict[str, types.ModuleType], parents: dict[str, tuple[types.ModuleType, str] | None], before: set[str]
) -> None:
    """Put the old modules back, as if the failed imports never happened."""
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.modules.update(old)
    for name, binding in parents.items():
        if binding is not None:
            setattr(binding[0], binding[1], old[name])


def _where(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc`` in user code."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for frame in reversed(frames):
        filename = frame.tb_frame.f_code.co_filename
        if not filename.startswith("<") and "/importlib/" not in filename:
            return f"{filename}:{frame.tb_lineno}"
    return None

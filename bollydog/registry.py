"""HandlerRegistry: which handler serves which message, and the one canonical name of each.

Every surface names a message with :meth:`HandlerRegistry.name_of` and reads a name with
:meth:`HandlerRegistry.resolve`: the one resolver (see :mod:`bollydog.names` for the rule).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bollydog.errors import ConfigError, DuplicateHandlerError, HandlerRegistrationError, UnknownMessageError
from bollydog.models.base import BaseMessage, Command, Event
from bollydog.names import MessageFilter, known_list, suggest

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler
    from bollydog.models.service import AppService

__all__ = ["HandlerRegistry", "ServedCommand", "import_message"]


# How strongly an app claims a message class for its domain (lower wins; ties: the domain
# declared first, i.e. config order, so every process of a split deployment agrees).
_HANDLES_COMMAND = 0  # the app serves the Command
_DEFINED_HERE = 1  # the class is defined in one of the app's handler modules
_SAME_PACKAGE = 2  # the class lives in the top-level package of one of the app's handler modules
_HANDLES_EVENT = 3  # the app handles the Event


@dataclass(frozen=True, slots=True)
class ServedCommand:
    """A Command an entrypoint can serve: run here by ``handler``, or (``handler`` None) by
    another process of domain and app ``remote``, reached through the transport."""

    message: type[BaseMessage]
    handler: Handler | None
    remote: tuple[str, str] | None = None

    @property
    def location(self) -> tuple[str, str] | None:
        """``(domain, app name)`` of the app serving it; None for a handler registered
        without an app."""
        if self.handler is None:
            return self.remote
        app = self.handler.app
        return (app.domain, app.name) if app is not None else None


class HandlerRegistry:
    """Which handler serves which message, and the one canonical name of every message.

    The canonical name is ``<domain>.<name>``. The domain is the message class's own ``domain``
    when its class body declares one; otherwise the domain of the app that serves the Command,
    else of the app whose handler module defines the class, else of the app whose handler
    modules share the class's top-level package, else of the first app handling the Event,
    else the class's top-level package. :meth:`name_of` gives it, :meth:`resolve` reads it.
    """

    def __init__(self) -> None:
        self.commands: dict[type[BaseMessage], Handler] = {}
        self.events: dict[type[BaseMessage], list[Handler]] = {}
        self.messages: dict[str, list[type[BaseMessage]]] = {}  # short name -> classes
        #: Commands handled in other processes: class -> (domain, service name of its app).
        self.remote: dict[type[BaseMessage], tuple[str, str]] = {}
        #: Event class -> the domains of other processes that handle it (listed by ``ls``).
        self.remote_events: dict[type[BaseMessage], set[str]] = {}
        self._domains: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # modules, packages
        self._claims: dict[type[BaseMessage], dict[str, int]] = {}  # class -> domain -> strength
        self._names: dict[type[BaseMessage], str] = {}
        self._by_name: dict[str, type[BaseMessage]] | None = None
        self._event_cache: dict[type[BaseMessage], tuple[Handler, ...]] = {}
        self._known: set[type[BaseMessage]] = set()  # every class of ``messages``
        self._successors: dict[type[BaseMessage], type[BaseMessage] | None] = {}

    # -- registration ------------------------------------------------------------------------

    def declare_domain(self, domain: str, modules: Iterable[str] = ()) -> None:
        """Make ``domain`` (served here or elsewhere) known with its handler ``modules``.

        Declaration order breaks ties between domains claiming one message; the composition
        root declares every domain of the config in file order first.
        """
        known_modules, packages = self._domains.get(domain, (frozenset(), frozenset()))
        modules = frozenset(modules)
        for other, (taken, _) in self._domains.items():
            shared = sorted(modules & taken) if other != domain else []
            if shared:
                # The first domain would keep every message of the module: the second serves nothing.
                raise ConfigError(
                    f"handler module '{shared[0]}' is listed by domains '{other}' and '{domain}'; "
                    "a module belongs to one domain (move the handlers, or list it once)"
                )
        modules |= known_modules
        self._domains[domain] = (modules, frozenset(m.split(".")[0] for m in modules))
        self._renamed()

    def register(self, handler: Handler, app: AppService | None = None) -> None:
        handler.app = app
        domain = getattr(app, "domain", None)
        if domain is not None and domain not in self._domains:
            self.declare_domain(domain, getattr(app, "handlers", ()))
        for message_type in handler.message_types:
            if issubclass(message_type, Event):
                self.events.setdefault(message_type, []).append(handler)
                self._event_cache.clear()
                self._claim(message_type, domain, _HANDLES_EVENT)
            else:
                existing = self.commands.get(message_type)
                if existing is not None and existing.func is not handler.func:
                    raise DuplicateHandlerError(
                        f"Command {message_type.__module__}.{message_type.__qualname__} has two "
                        f"handlers: {existing.qualname} and {handler.qualname}; "
                        "a Command has exactly one (use an Event for several)"
                    )
                self._check_declared(message_type, domain, handler.qualname)
                self.commands[message_type] = handler
                self._claim(message_type, domain, _HANDLES_COMMAND)
            self.add_message(message_type)

    def register_all(self, handlers: Iterable[Handler], app: AppService | None = None) -> None:
        for handler in handlers:
            self.register(handler, app)

    def add_message(self, message_type: type[BaseMessage]) -> None:
        """Make ``message_type`` known by name (handled here or not)."""
        same_name = self.messages.setdefault(message_type.name, [])
        if message_type not in same_name:
            same_name.append(message_type)
            self._known.add(message_type)
            self._renamed()

    def add_remote(self, message_types: Iterable[type[BaseMessage]], domain: str, service: str) -> None:
        """Messages of ``domain`` (app ``service``) that other processes handle: they resolve by
        name here and entrypoints serve them; the hub sends them through its transport."""
        if domain not in self._domains:
            self.declare_domain(domain)
        for message_type in message_types:
            if issubclass(message_type, Event):
                self._claim(message_type, domain, _HANDLES_EVENT)
                self.remote_events.setdefault(message_type, set()).add(domain)
            elif message_type not in self.commands:
                self._check_declared(message_type, domain, f"domain '{domain}'")
                self.remote[message_type] = (domain, service)
                self._claim(message_type, domain, _HANDLES_COMMAND)
            self.add_message(message_type)

    def _claim(self, message_type: type[BaseMessage], domain: str | None, strength: int) -> None:
        if domain is None:
            return
        claims = self._claims.setdefault(message_type, {})
        if strength < claims.get(domain, strength + 1):
            claims[domain] = strength
            self._renamed()

    @staticmethod
    def _check_declared(message_type: type[BaseMessage], domain: str | None, server: str) -> None:
        declared = message_type._bd_declared_domain
        if declared is not None and domain is not None and declared != domain:
            raise HandlerRegistrationError(
                f"Command {message_type.__module__}.{message_type.__qualname__} declares "
                f"domain = '{declared}' but is served by {server} of domain '{domain}'; remove "
                f"the declaration (its name is then {domain}.{message_type.name}) or serve it "
                f"from domain '{declared}'"
            )

    def _renamed(self) -> None:
        self._names.clear()
        self._by_name = None
        self._successors.clear()

    # -- names -------------------------------------------------------------------------------

    def name_of(self, message_type: type[BaseMessage]) -> str:
        """The canonical ``domain.name`` of ``message_type`` (see the class documentation).

        Computing it also sets the class's ``domain`` attribute to the canonical domain, so
        ``message.domain`` in user code says the same as every surface.
        """
        name = self._names.get(message_type)
        if name is None:
            domain = self._domain_of(message_type)
            type.__setattr__(message_type, "domain", domain)
            name = self._names[message_type] = f"{domain}.{message_type.name}"
        return name

    def domain_of(self, message_type: type[BaseMessage]) -> str:
        return self.name_of(message_type).rpartition(".")[0]

    def _domain_of(self, message_type: type[BaseMessage]) -> str:
        if message_type._bd_declared_domain is not None:
            return message_type._bd_declared_domain
        best: tuple[int, int] | None = None
        domain = message_type.__module__.split(".")[0]
        package = domain
        claims = self._claims.get(message_type, {})
        for order, (candidate, (modules, packages)) in enumerate(self._domains.items()):
            strengths = [claims[candidate]] if candidate in claims else []
            if message_type.__module__ in modules:
                strengths.append(_DEFINED_HERE)
            elif package in packages:
                strengths.append(_SAME_PACKAGE)
            if strengths and (best is None or (min(strengths), order) < best):
                best, domain = (min(strengths), order), candidate
        return domain

    def bind_domains(self) -> None:
        """Set every known class's ``domain`` attribute to its canonical domain (at hub start:
        another hub of this process may have named the same classes differently)."""
        for message_type in self.message_classes():
            type.__setattr__(message_type, "domain", self.domain_of(message_type))

    def domains(self) -> list[str]:
        """Every declared domain, run here or elsewhere, in declaration (config) order."""
        return list(self._domains)

    def unloaded_domains(self) -> list[str]:
        """Declared domains of which no message is known here (run elsewhere, no transport)."""
        loaded = {self.domain_of(c) for c in self.message_classes()}
        return [d for d in self._domains if d not in loaded]

    def names(self) -> dict[str, type[BaseMessage]]:
        """Every known message by canonical name (lower case)."""
        if self._by_name is None:
            self._by_name = {self.name_of(c).lower(): c for c in self.message_classes()}
        return self._by_name

    def resolve(
        self, reference: str, *, imports: bool = True, allowed: "MessageFilter | None" = None
    ) -> type[BaseMessage]:
        """The message class ``reference`` names: a canonical name (``library.borrow``), a bare
        name when only one message has it (``borrow``) or, with ``imports``, a dotted import
        path (``libraryapp.messages.Borrow``).

        Network entrypoints pass ``imports=False`` (a client never makes us import a module) and
        their ``allowed`` filter: a message it hides is reported exactly like an unknown one.
        """
        def visible(cls: type[BaseMessage]) -> bool:
            return allowed is None or allowed.allows(self.name_of(cls))

        key = reference.strip().lower()
        found = self.names().get(key)
        if found is not None and visible(found):
            return found
        candidates = [c for c in self.messages.get(key, ()) if visible(c)]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            options = ", ".join(sorted(self.name_of(c) for c in candidates))
            raise UnknownMessageError(f"message name '{reference}' is ambiguous: use one of {options}")
        reason = ""
        if imports and ("." in reference or ":" in reference):
            try:
                message_type = import_message(reference)
            except UnknownMessageError as exc:
                reason = f" ({exc})" if reference.count(".") >= 2 or ":" in reference else ""
            else:
                self.add_message(message_type)
                return message_type
        known = [n for n, c in self.names().items() if visible(c)]
        raise UnknownMessageError(
            f"unknown message '{reference}'{reason}{suggest(reference, known)}; "
            f"known: {known_list(known)}"
        )

    # -- lookups -----------------------------------------------------------------------------

    def served_commands(self) -> list[ServedCommand]:
        """Every Command this process can serve: those handled here, then those handled by
        other processes (what HTTP routes and MCP tools are made of)."""
        local = [ServedCommand(m, h) for m, h in self.commands.items()]
        return local + [ServedCommand(m, None, where) for m, where in self.remote.items()]


    def command_handler(self, message_type: type[BaseMessage]) -> Handler | None:
        return self.commands.get(message_type)

    def successor(self, message_type: type[BaseMessage]) -> type[BaseMessage] | None:
        """For a class this registry does not know (one a code reload replaced), the known
        class of the same canonical name: messages made before a reload are routed by name,
        not by class identity. None when it is known, or nothing has its name."""
        try:
            return self._successors[message_type]
        except KeyError:
            pass
        found = None
        if message_type not in self._known:
            found = self.names().get(f"{message_type.domain}.{message_type.name}".lower())
        self._successors[message_type] = found
        return found

    def replace_with(self, other: "HandlerRegistry") -> None:
        """Take every table of ``other`` at once (a code reload swaps its registry in one step,
        on the loop, while entrypoints keep holding this object)."""
        self.__dict__.update(other.__dict__)

    def event_handlers(self, message_type: type[BaseMessage]) -> tuple[Handler, ...]:
        """Handlers of the event class and of its Event base classes."""
        cached = self._event_cache.get(message_type)
        if cached is None:
            cached = tuple(
                h
                for klass in message_type.__mro__
                if isinstance(klass, type) and issubclass(klass, Event)
                for h in self.events.get(klass, ())
            )
            self._event_cache[message_type] = cached
        return cached

    def message_classes(self) -> list[type[BaseMessage]]:
        return [cls for classes in self.messages.values() for cls in classes]


def import_message(path: str) -> type[BaseMessage]:
    """Import a message class by dotted path (``pkg.module.Class`` or ``pkg.module:Class``)."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        raise UnknownMessageError(f"unknown message '{path}': not a registered name or a dotted path")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageError(f"unknown message '{path}': {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, (Command, Event))):
        raise UnknownMessageError(f"'{path}' is not a Command or Event class")
    return obj

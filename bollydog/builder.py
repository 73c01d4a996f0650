"""ServiceBuilder: one way to assemble an AppService, from code or from a config section.

In code::

    app = (
        ServiceBuilder("shop")
        .handlers("shop.handlers")
        .unit_of_work(SqlAlchemyUnitOfWork, url="sqlite+aiosqlite:///shop.db", metadata=Base)
        .protocol(SqlAlchemyProtocol)
        .build()
    )

A config section (``shop: {handlers: [...], unit_of_work: {module: ...}, protocol: ...}``) goes
through :meth:`ServiceBuilder.from_section`, the same builder, so code and YAML cannot diverge.
A domain given no persistence gets an in-memory protocol.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import operator
import types
import typing
from collections import abc
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from bollydog.errors import BollydogError, ConfigError
from bollydog.handlers import import_handler_module
from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.models.service import AppService

__all__ = ["ServiceBuilder", "check_options", "check_section", "constructor_options", "construct", "resolve_ref"]

#: Config keys of a domain section that the builder reads itself; any other key must be an
#: option of the AppService's constructor (:meth:`AppService.accepted_options`).
_SECTION_KEYS = ("app", "handlers", "unit_of_work", "protocol")
#: Section names and keys that belong to an entrypoint: such a section without ``app:`` is an
#: entrypoint whose class was forgotten, not a domain.
_ENTRYPOINT_NAMES = ("http", "websocket", "mcp", "shell", "scheduler", "transport", "telemetry", "redis")
_ENTRYPOINT_KEYS = frozenset({"host", "port"})


class ServiceBuilder:
    """Collects a domain's parts, then :meth:`build` checks them and makes the AppService."""

    def __init__(
        self, domain: str, app: type[AppService] = AppService, *, where: str | None = None,
        locations: Mapping[str, str] | None = None,
    ) -> None:
        if not (isinstance(app, type) and issubclass(app, AppService)):
            raise ConfigError(f"{where or domain}.app: {app!r} is not an AppService class")
        self.domain = domain
        self.app_class = app
        self._where = where or domain
        self._handlers: list[str] = []
        self._unit_of_work: Any = None
        self._protocol: Any = None
        self._options: dict[str, Any] = {}
        self._locations = dict(locations or {})  # config key -> file:line, for error messages

    # -- parts ----------------------------------------------------------------------------------

    def handlers(self, *modules: str) -> "ServiceBuilder":
        """Modules searched for handlers (and the messages they use)."""
        for module in modules:
            if not isinstance(module, str) or not module:
                raise ConfigError(f"{self._where}.handlers: expected module paths, got {module!r}")
            self._handlers.append(module)
        return self

    def unit_of_work(self, unit_of_work: UnitOfWork | type[UnitOfWork], **options: Any) -> "ServiceBuilder":
        """The transaction owner: an instance, or a class built with ``options``."""
        self._unit_of_work = _part(unit_of_work, options, UnitOfWork, f"{self._where}.unit_of_work")
        return self

    def protocol(self, protocol: Protocol | type[Protocol], **options: Any) -> "ServiceBuilder":
        """The repository handlers call: an instance, or a class built with ``options`` (and
        the unit of work, when one was given)."""
        self._protocol = _part(protocol, options, Protocol, f"{self._where}.protocol")
        return self

    def options(self, **options: Any) -> "ServiceBuilder":
        """Other keyword arguments of the AppService (``name``, your subclass's own, ...); one
        it does not take is a :class:`ConfigError` listing those it does."""
        _check_options(self.app_class, options, self._where, self._locations)
        self._options.update(options)
        return self

    # -- result ---------------------------------------------------------------------------------

    def build(self) -> AppService:
        unit_of_work = self._unit_of_work
        if isinstance(unit_of_work, tuple):
            uow_class, uow_options = unit_of_work
            _check_part(uow_class, uow_options, f"{self._where}.unit_of_work", {}, alone=False)
            unit_of_work = construct(uow_class, uow_options, where=f"{self._where}.unit_of_work")
        protocol = self._protocol
        if isinstance(protocol, tuple):
            cls, options = protocol
            _check_part(cls, options, f"{self._where}.protocol", {}, alone=unit_of_work is None)
            if unit_of_work is not None:
                options = {"unit_of_work": unit_of_work, **options}
            protocol = construct(cls, options, where=f"{self._where}.protocol")
        for index, module in enumerate(self._handlers):
            # Imported now, where the config line of the entry is known; the hub finds them loaded.
            import_handler_module(module, where=self._locations.get(f"handlers[{index}]"))
        try:
            return self.app_class(
                domain=self.domain, handlers=self._handlers, protocol=protocol, unit_of_work=unit_of_work,
                **self._options,
            )
        except BollydogError:
            raise
        except TypeError as exc:
            raise ConfigError(f"{self._where}: cannot create {self.app_class.__name__}: {exc}") from exc

    # -- from configuration -----------------------------------------------------------------------

    @classmethod
    def from_section(cls, key: str, section: Mapping[str, Any], app: type[AppService] = AppService) -> "ServiceBuilder":
        """The builder a config section describes (``key`` is the domain unless it sets one)."""
        check_section(key, section, app)
        options = {k: v for k, v in section.items() if k not in _SECTION_KEYS}
        builder = cls(str(options.pop("domain", key)), app, where=key, locations=getattr(section, "lines", None))
        handlers = section.get("handlers") or []
        if isinstance(handlers, str) or not isinstance(handlers, list):
            raise ConfigError(f"{key}.handlers: expected a list of module paths, got {handlers!r}")
        builder.handlers(*handlers)
        for part, base in (("unit_of_work", UnitOfWork), ("protocol", Protocol)):
            spec = section.get(part)
            if spec is None:
                continue
            target, part_options = _section_part(spec, f"{key}.{part}", base)
            _check_part(
                target, part_options, f"{key}.{part}", getattr(spec, "lines", None) or {},
                alone=part == "protocol" and section.get("unit_of_work") is None, keys=("module",),
            )
            getattr(builder, part)(target, **part_options)
        return builder.options(**options)


def check_section(
    key: str, section: Mapping[str, Any], app: type[AppService] = AppService, *, at: str | None = None
) -> None:
    """Refuse what a domain section cannot mean: a key that is no option of ``app``, or an
    entrypoint section whose ``app:`` is missing (it would become an empty domain). ``at`` is
    ``file:line`` of the section's key, when known."""
    lines: Mapping[str, str] = getattr(section, "lines", None) or {}
    if section.get("app") is None and not section.get("handlers"):
        entrypoint_keys = sorted(_ENTRYPOINT_KEYS & set(section))
        named = difflib.get_close_matches(key.lower(), _ENTRYPOINT_NAMES, n=1, cutoff=0.7)
        if entrypoint_keys or named:
            if entrypoint_keys:
                at = lines.get(entrypoint_keys[0], at)
                why = f"its key(s) {', '.join(entrypoint_keys)} belong to an entrypoint"
            else:
                why = f"its name looks like an entrypoint's ({named[0]})"
            raise ConfigError(
                f"{at + ': ' if at else ''}{key}: a section without 'app:' is a domain, but {why}; "
                "add 'app: !module ...' naming the entrypoint class "
                "(HTTP: app: !module bollydog.entrypoint.http.app.HttpService)"
            )
    _check_options(app, section, key, lines)


def _check_options(
    app: type[AppService], options: Mapping[str, Any], where: str, locations: Mapping[str, str]
) -> None:
    check_options(app, options, where, locations, keys=_SECTION_KEYS, skip=("app", "unit_of_work", "protocol"))


def constructor_options(cls: type) -> tuple[dict[str, Any], bool]:
    """The keyword options ``cls`` takes, each with its type (``Any`` when not annotated), and
    whether it takes any other keyword too.

    A class with an ``options_model`` (a pydantic model, as the entrypoints have) takes that
    model's fields. Otherwise: the keyword parameters of each ``__init__`` up the class hierarchy,
    for as long as one passes ``**options`` on to its parent; a variable keyword parameter of
    another name (``**engine_options``) takes anything. The bases :class:`Protocol`,
    :class:`UnitOfWork` and :class:`AppService` end the walk.
    """
    model = getattr(cls, "options_model", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {
            name: Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            for name, info in model.model_fields.items()
        }, False
    taken: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # an annotation that does not evaluate here: its type is not checked
            hints = {}
        params = list(inspect.signature(init).parameters.values())
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.name not in taken:
                taken[p.name] = hints.get(p.name, Any)
        rest = [p for p in params if p.kind is p.VAR_KEYWORD]
        if not rest or klass in (Protocol, UnitOfWork, AppService):
            break
        if rest[0].name != "options":
            return taken, True
    return taken, False


def check_options(
    cls: type,
    options: Mapping[str, Any],
    where: str,
    locations: Mapping[str, str],
    *,
    keys: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> None:
    """Refuse an option ``cls`` does not take (:func:`constructor_options`) and a value of the
    wrong type. ``keys`` are the section's own keys, read before ``cls`` is made (``app``,
    ``module``); ``skip`` those whose values are not checked here. Every problem is named with
    its ``file:line`` (``locations``), the close key and the keys the section takes."""
    taken, takes_any = constructor_options(cls)
    known = [*keys, *(k for k in taken if k not in keys)]
    problems = []
    for name, value in options.items():
        at = locations.get(name)
        if name not in taken and name not in keys:
            if takes_any:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            problems.append(
                f"{at + ': ' if at else ''}{where}.{name}: unknown key"
                + (f" (did you mean '{close[0]}'?)" if close else "")
            )
        elif name not in skip and name in taken:
            problem = _type_problem(taken[name], value)
            if problem is not None:
                index, expected, got = problem
                at = locations.get(f"{name}{index}", at)
                raise ConfigError(f"{at + ': ' if at else ''}{where}.{name}{index}: expected {expected}, got {got}")
    if problems:
        raise ConfigError(f"{'; '.join(problems)}; {cls.__name__} takes {', '.join(known)}")


_EXPECTED = {
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _type_problem(annotation: Any, value: Any) -> tuple[str, str, str] | None:
    """``(index, expected, got)`` when ``value`` is not of ``annotation``, else None."""
    from bollydog.config import ModuleRef

    if annotation is Any or isinstance(value, ModuleRef):
        return None
    if isinstance(value, str) and _is_flag(annotation):
        # Lax validation reads "false" as False, but the text itself would reach the class,
        # where any non-empty string is true: a quoted boolean is refused.
        return "", "true or false (unquoted)", _kind(value)
    adapter = _adapter(annotation)
    if adapter is None:
        return None
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = [part for part in error["loc"] if isinstance(part, int)]
        index = "".join(f"[{part}]" for part in path)
        found = value
        for part in path:
            found = found[part]
        expected = _EXPECTED.get(error["type"]) or error["msg"][0].lower() + error["msg"][1:]
        if expected.startswith("input should be "):
            expected = expected[len("input should be "):]
        return index, expected, _kind(found)
    return None


def _is_flag(annotation: Any) -> bool:
    """``bool`` or ``bool | None``."""
    if annotation is bool:
        return True
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    return bool(args) and bool in args and all(a in (bool, type(None)) for a in args)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float, str)):
        return f"{'an integer' if isinstance(value, int) else 'a number' if isinstance(value, float) else 'a string'} ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(_eager(annotation), config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a type pydantic cannot check (or unhashable metadata): not checked
        return None


def _eager(annotation: Any) -> Any:
    """``annotation`` with iterables as lists: pydantic checks an ``Iterable`` only when it is
    iterated, and a config value is a list anyway."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (abc.Iterable, abc.Sequence, abc.Collection) and args:
        return list[_eager(args[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType) and args:
        return functools.reduce(operator.or_, (_eager(a) for a in args))
    return annotation


def _check_part(
    target: type, options: Mapping[str, Any], where: str, locations: Mapping[str, str], *,
    alone: bool, keys: tuple[str, ...] = (),
) -> None:
    """The options of a unit of work or protocol class, in a config section or in code. A
    protocol ``alone`` (no unit of work given) takes the options of the unit of work it makes."""
    takes: type = (getattr(target, "unit_of_work_class", None) or target) if alone else target
    check_options(takes, options, where, locations, keys=keys if takes is target else (*keys, "unit_of_work"))


def _part(value: Any, options: dict[str, Any], base: type, where: str) -> Any:
    """An instance as given, or ``(class, options)`` to build once every part is known."""
    if isinstance(value, base):
        if options:
            raise ConfigError(f"{where}: options are for a class, not for an instance")
        return value
    if isinstance(value, type) and issubclass(value, base):
        return (value, dict(options))
    raise ConfigError(f"{where}: {value!r} is not a {base.__name__} class or instance")


def _section_part(spec: Any, where: str, base: type) -> tuple[type, dict[str, Any]]:
    from bollydog.config import ModuleRef  # the YAML loader: only when reading a config

    if isinstance(spec, ModuleRef):
        spec = {"module": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping with a 'module' key")
    options = dict(spec)
    ref = options.pop("module", None)
    if ref is None:
        raise ConfigError(f"{where}: missing 'module' (e.g. module: !module pkg.adapters.MyProtocol)")
    target = resolve_ref(ref, f"{where}.module")
    if not (isinstance(target, type) and issubclass(target, base)):
        raise ConfigError(f"{where}.module: {target!r} is not a {base.__name__} class")
    return target, options


def resolve_ref(value: Any, where: str) -> Any:
    """What a config value names: a ``!module`` reference or a dotted-path string, imported."""
    from bollydog.config import ModuleRef

    if value is None:
        return None
    if isinstance(value, ModuleRef):
        return value.resolve()
    if isinstance(value, str):
        return ModuleRef(value, key=where).resolve()
    raise ConfigError(f"{where}: expected '!module dotted.path', got {value!r}")


def construct(cls: type, options: Mapping[str, Any], *, where: str) -> Any:
    """``cls(**options)``; a wrong option is a :class:`ConfigError` naming ``where``."""
    try:
        return cls(**options)
    except BollydogError:
        raise
    except TypeError as exc:
        raise ConfigError(f"{where}: cannot create {cls.__name__}: {exc}") from exc

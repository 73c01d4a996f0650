"""Read bollydog configuration files (YAML or JSON) into plain dicts.

Two things happen on top of plain parsing:

* ``!module dotted.path`` (YAML tag) or ``"!module dotted.path"`` (JSON string) becomes a
  :class:`ModuleRef`, resolved lazily so that domains skipped by ``--include/--exclude`` never
  need their code importable in this process.
* ``${VAR}`` / ``${VAR:default}`` in string values is replaced from the environment at load time;
  ``$${`` stands for a literal ``${``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from bollydog.errors import ConfigError

__all__ = ["ModuleRef", "Section", "load_config", "loads_config", "location"]

_MODULE_TAG = "!module"
_JSON_MODULE_PREFIX = "!module "
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_MODULE_PATH = re.compile(rf"{_DOTTED}(?::{_DOTTED})?")
# "$${" is an escape; "${NAME}" / "${NAME:default}" a reference; any other "${" is malformed
# (it matches the bare "${" alternative, with no name).
# A default may hold plain references itself: ``${DATABASE_URL:sqlite:///${BOLLYDOG_CONFIG_DIR}/a.db}``.
_DEFAULT = rf"(?:[^}}$]|\$(?!\{{)|\$\{{{_IDENT}\}})*"
_REF = re.compile(rf"\$\$\{{|\$\{{(?:(?P<name>{_IDENT})(?::(?P<default>{_DEFAULT}))?\}})?")
#: Set while a config file is read: the absolute folder holding it, so paths in the file can be
#: relative to the file rather than to the current directory.
CONFIG_DIR_VARIABLE = "BOLLYDOG_CONFIG_DIR"
_FORMATS = {"yaml": "yaml", "yml": "yaml", "json": "json"}


@dataclass(frozen=True)
class ModuleRef:
    """A ``!module`` reference from the configuration, imported only when :meth:`resolve` runs.

    ``path`` is ``pkg.mod.Attr`` or ``pkg.mod:Attr``; ``key`` is the dotted key path where the
    reference was written and ``source`` the file it came from (both only for error messages).
    """

    path: str
    key: str | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False, repr=False)
    #: The line it was written on (1-based), when the loader knows it.
    line: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not _MODULE_PATH.fullmatch(self.path):
            raise self._error(
                "expected a dotted path like 'pkg.module.Name' or 'pkg.module:Name'", "invalid"
            )

    def resolve(self) -> Any:
        """Import and return the referenced module or attribute; raise ConfigError if it fails."""
        module_part, colon, attr_part = self.path.partition(":")
        if colon:  # explicit split: everything before ':' must be a module
            obj, owner, attrs = self._import(module_part, required=True), module_part, []
        else:
            # Walk forward from the top package, importing submodules only where no attribute
            # of that name exists, so errors name the exact module or attribute that is missing.
            first, *attrs = module_part.split(".")
            obj, owner = self._import(first, required=True), first
        parts = [*attrs, *(attr_part.split(".") if attr_part else [])]
        for index, attr in enumerate(parts):
            sub = None
            if isinstance(obj, ModuleType) and not hasattr(obj, attr):
                sub = self._import(f"{owner}.{attr}", required=False)
            if sub is not None:
                obj = sub
            elif hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif isinstance(obj, ModuleType) and index < len(parts) - 1:
                # More follows: the path went on through a module that does not exist.
                raise self._error(f"no module named '{owner}.{attr}'")
            else:
                raise self._error(f"{owner!r} has no attribute {attr!r}")
            owner = f"{owner}.{attr}"
        return obj

    def _import(self, name: str, *, required: bool) -> Any:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if name == missing or name.startswith(missing + "."):
                if not required:
                    return None
                raise self._error(f"no module named {missing!r}") from None
            # The module exists but one of its own imports is missing: say so, don't hide it.
            raise self._error(f"importing {name!r} failed: {exc}") from exc
        except Exception as exc:
            raise self._error(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc

    def _error(self, problem: str, what: str = "cannot resolve") -> ConfigError:
        where = f"{self.source}{'' if self.line is None else f':{self.line}'}: " if self.source else ""
        at = f" at key '{self.key}'" if self.key else ""
        return ConfigError(f"{where}{what} !module {self.path!r}{at}: {problem}")


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read a ``.yaml``/``.yml`` or ``.json`` configuration file and return its top-level mapping.

    Raises :class:`ConfigError` if the file is missing, unreadable or invalid, if its top level
    is not a mapping, or if an environment variable it needs is unset. ``environ`` defaults to
    ``os.environ``.
    """
    file = Path(path)
    fmt = _FORMATS.get(file.suffix.lower().lstrip("."))
    if fmt is None:
        raise ConfigError(f"{file}: unsupported config file type; use .yaml, .yml or .json")
    try:
        text = file.read_text(encoding="utf-8-sig")  # -sig: json.loads rejects a BOM
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    env = dict(os.environ if environ is None else environ)
    env[CONFIG_DIR_VARIABLE] = str(file.resolve().parent)
    return loads_config(text, source=str(file), fmt=fmt, environ=env)


def loads_config(
    text: str,
    *,
    source: str = "<string>",
    fmt: str = "yaml",
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Parse configuration ``text`` (``fmt`` is ``"yaml"`` or ``"json"``) like :func:`load_config`.

    ``source`` names the text in error messages.
    """
    kind = _FORMATS.get(fmt.lower())
    if kind is None:
        raise ValueError(f"unknown config format {fmt!r}; expected 'yaml' or 'json'")
    env = os.environ if environ is None else environ
    data = _load_yaml(text, source, env) if kind == "yaml" else _load_json(text, source, env)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else type(data).__name__
        raise ConfigError(f"{source}: the top level must be a mapping, got {got}")
    return data


class Section(dict[str, Any]):
    """A mapping read from a YAML file: a plain dict that also knows where its keys were written.

    ``lines`` maps a key (and ``key[i]`` for the items of a list value) to ``file:line``, so
    errors found after loading (an unknown option, a missing handler module) can point there.
    """

    lines: dict[str, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = {}


def location(section: Any, key: str) -> str | None:
    """``file:line`` where ``key`` of ``section`` was written, when the loader recorded it."""
    lines = getattr(section, "lines", None)
    return lines.get(key) if isinstance(lines, dict) else None


# -- environment substitution ------------------------------------------------------------------


def _substitute(text: str, env: Mapping[str, str], where: str) -> tuple[str, bool]:
    """Replace references in ``text``; also tell whether ``text`` was exactly one reference."""

    def replace(match: re.Match[str]) -> str:
        if match.group() == "$${":
            return "${"
        name, default = match.group("name"), match.group("default")
        if name is None:
            raise ConfigError(
                f"{where}: malformed reference in {text!r}; "
                "use ${NAME} or ${NAME:default}, or $${ for a literal '${'"
            )
        if name in env:
            return env[name]
        if default is None:
            raise ConfigError(
                f"{where}: environment variable {name!r} is not set "
                f"and ${{{name}}} has no default (write ${{{name}:default}} to give one)"
            )
        return _substitute(default, env, where)[0] if "${" in default else default

    whole = _REF.fullmatch(text)
    return _REF.sub(replace, text), bool(whole and whole.group("name"))


def _where(source: str, key: str, mark: Any = None) -> str:
    loc = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    return f"{loc}: at key '{key}'" if key else loc


def _join(prefix: str, part: Any) -> str:
    return f"{prefix}.{part}" if prefix else str(part)


# -- YAML --------------------------------------------------------------------------------------


def _construct_module(loader: yaml.BaseLoader, node: yaml.Node) -> ModuleRef:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!module expects a dotted path, not a collection", node.start_mark
        )
    # _prepare_yaml_node already substituted the environment and stored the key path.
    key = getattr(node, "bollydog_key", None)
    source = getattr(node, "bollydog_source", None)
    line = node.start_mark.line + 1 if source is not None else None
    return ModuleRef(loader.construct_scalar(node).strip(), key=key, source=source, line=line)


# Our own loader classes: the tag is registered on them only, so yaml.SafeLoader (and everyone
# else's yaml.safe_load) is left untouched. The C one is used when libyaml is available.
class _PyConfigLoader(yaml.SafeLoader):
    pass


def _construct_section(loader: Any, node: yaml.MappingNode) -> Any:
    data = Section()
    yield data  # first, so anchors and aliases of this mapping resolve (as PyYAML's own does)
    data.update(loader.construct_mapping(node))
    source = getattr(node, "bollydog_source", None)
    if source is None:
        return
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        data.lines[key_node.value] = f"{source}:{key_node.start_mark.line + 1}"
        if isinstance(value_node, yaml.SequenceNode):
            for index, item in enumerate(value_node.value):
                data.lines[f"{key_node.value}[{index}]"] = f"{source}:{item.start_mark.line + 1}"


_PyConfigLoader.add_constructor(_MODULE_TAG, _construct_module)
_PyConfigLoader.add_constructor("tag:yaml.org,2002:map", _construct_section)
_ConfigLoader: type[yaml.SafeLoader | yaml.CSafeLoader] = _PyConfigLoader
if getattr(yaml, "CSafeLoader", None) is not None:

    class _CConfigLoader(yaml.CSafeLoader):
        pass

    _CConfigLoader.add_constructor(_MODULE_TAG, _construct_module)
    _CConfigLoader.add_constructor("tag:yaml.org,2002:map", _construct_section)
    _ConfigLoader = _CConfigLoader


def _load_yaml(text: str, source: str, env: Mapping[str, str]) -> Any:
    loader = _ConfigLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None  # empty document: loads_config reports it
        if isinstance(root, yaml.MappingNode):  # anything else is rejected by loads_config
            _prepare_yaml_node(loader, root, "", source, env, set())
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise ConfigError(f"{loc}: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. `d: 2020-13-45` matches the date pattern
        raise ConfigError(f"{source}: invalid value: {exc}") from None
    finally:
        loader.dispose()


def _prepare_yaml_node(
    loader: Any, node: yaml.Node, key: str, source: str, env: Mapping[str, str], seen: set[int]
) -> None:
    """Substitute the environment into string scalars before construction.

    Done on nodes, not on constructed values, because only nodes still know whether a scalar
    was quoted (quoted values stay strings) and where it is (line, column, key path).
    """
    if id(node) in seen:  # an alias of an anchor already handled: substituting twice is wrong
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        setattr(node, "bollydog_source", source)  # read back by _construct_section
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                ident = (key_node.tag, key_node.value)
                if ident in first_lines:
                    raise ConfigError(
                        f"{source}:{line}: {_join(key, key_node.value)}: duplicate key "
                        f"(first at line {first_lines[ident]})"
                    )
                first_lines[ident] = line
            part = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            _prepare_yaml_node(loader, value_node, _join(key, part), source, env, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _prepare_yaml_node(loader, item, _join(key, index), source, env, seen)
    elif node.tag == _MODULE_TAG:
        if "${" in node.value:
            node.value, _ = _substitute(node.value, env, _where(source, key, node.start_mark))
        # Extra attributes on the node, read back by _construct_module.
        setattr(node, "bollydog_key", key)
        setattr(node, "bollydog_source", source)
    elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
        value, whole = _substitute(node.value, env, _where(source, key, node.start_mark))
        node.value = value
        # A plain (unquoted) whole-value reference is typed as if the text had been written
        # there: `port: ${PORT:8000}` gives 8000. Empty stays "" rather than becoming None.
        if whole and not node.style and value:
            node.tag = loader.resolve(yaml.ScalarNode, value, (True, False))


# -- JSON --------------------------------------------------------------------------------------


def _load_json(text: str, source: str, env: Mapping[str, str]) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    return _prepare_json_value(data, "", source, env) if isinstance(data, dict) else data


def _prepare_json_value(value: Any, key: str, source: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _prepare_json_value(v, _join(key, k), source, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_prepare_json_value(v, _join(key, i), source, env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    if value.startswith(_JSON_MODULE_PREFIX):
        path = value[len(_JSON_MODULE_PREFIX) :]
        if "${" in path:
            path, _ = _substitute(path, env, _where(source, key))
        return ModuleRef(path.strip(), key=key, source=source)
    if "${" not in value:
        return value
    text, whole = _substitute(value, env, _where(source, key))
    if whole and text:
        # JSON has no unquoted strings, so a whole-value reference is typed like a plain YAML
        # scalar; otherwise `"port": "${PORT:8000}"` could never give a number.
        return _retype(text, _where(source, key))
    return text


def _retype(text: str, where: str) -> Any:
    """Type ``text`` the way YAML types a plain scalar (int, float, bool, null, ...)."""
    # types-PyYAML leaves Resolver.resolve unannotated.
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    try:
        return yaml.constructor.SafeConstructor().construct_object(yaml.ScalarNode(tag, text))
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: invalid value {text!r}: {exc}") from None

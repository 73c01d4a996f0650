"""How rules are written: patterns over state objects, conditions, variables, negation.

A :class:`Pattern` selects facts (state objects) of one ``kind`` by a label selector and field
conditions. A condition is ``"<path> <op> <operand>"``: the path is ``kind``, ``key``,
``version``, ``labels.<name>`` or ``spec.<field>[.<field>...]``; the operator one of ``==``,
``!=``, ``<``, ``<=``, ``>``, ``>=``; the operand a JSON literal (``80``, ``"hot"``,
``true``), a bare word (a string), or a variable ``$name``. The first ``path == $name`` of a
variable binds it; every later use compares with the bound value, which is how patterns join
(``spec.site == $site`` in two patterns: the same site). :class:`Not` holds when no fact matches
its pattern (its variables must be bound by earlier patterns).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bollydog.errors import ConfigError
from bollydog.state.objects import StateObject
from bollydog.state.selectors import LabelSelector, SelectorError

__all__ = ["Condition", "Match", "Not", "Pattern", "Rule", "RuleError", "Var", "resolve_path"]


class RuleError(ConfigError):
    """A rule is malformed: a condition does not parse, a variable is used before it is bound."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_CONDITION = re.compile(r"\s*([A-Za-z_][\w.\-/]*)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*\Z")
_BARE_WORD = re.compile(r"[\w.\-/:]+\Z")
_ROOTS = ("kind", "key", "version", "labels", "spec")


@dataclass(frozen=True, slots=True)
class Var:
    """A variable operand, ``$name`` in text."""

    name: str

    def __str__(self) -> str:
        return f"${self.name}"


def resolve_path(fact: StateObject, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``fact``, or ``MISSING``; lists and dicts come back hashable."""
    root = path[0]
    if root == "kind":
        value: Any = fact.kind
    elif root == "key":
        value = fact.key
    elif root == "version":
        value = fact.version
    elif root == "labels":
        value = fact.labels.get(path[1], MISSING) if len(path) == 2 else MISSING
        return value
    else:
        value = fact.spec
        for part in path[1:]:
            if not isinstance(value, Mapping):
                return MISSING
            value = value.get(part, MISSING)
            if value is MISSING:
                return MISSING
    return freeze(value)


def freeze(value: Any) -> Any:
    """A hashable stand-in for ``value`` (join keys must hash; JSON lists and objects do not)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def compare(op: str, left: Any, right: Any) -> bool:
    """``left <op> right``; a missing value or values that do not compare never match."""
    if left is MISSING or right is MISSING:
        return False
    try:
        return bool(_COMPARE[op](left, right))
    except TypeError:
        return False


@dataclass(frozen=True, slots=True)
class Condition:
    """``path op operand``: a constant test when the operand is a value, a join when a variable."""

    path: tuple[str, ...]
    op: str
    operand: Any

    @classmethod
    def of(cls, value: "Condition | str | Sequence[Any]") -> "Condition":
        if isinstance(value, Condition):
            return value
        if isinstance(value, str):
            found = _CONDITION.match(value)
            if found is None:
                raise RuleError(
                    f"condition {value!r}: expected '<path> <op> <value or $variable>' with op one of "
                    f"{', '.join(_COMPARE)} (e.g. 'spec.temperature > 80', 'spec.site == $site')"
                )
            path, op, operand = found.groups()
            return cls(_path(path, value), op, _operand(operand, value))
        if isinstance(value, (list, tuple)) and len(value) == 3:
            path, op, operand = value
            if op not in _COMPARE:
                raise RuleError(f"condition {tuple(value)!r}: operator {op!r} is not one of {', '.join(_COMPARE)}")
            return cls(_path(str(path), str(tuple(value))), str(op), operand)
        raise RuleError(f"condition {value!r}: expected a string or a (path, op, value) triple")

    def test(self, fact: StateObject, bindings: Mapping[str, Any]) -> bool:
        right = bindings.get(self.operand.name, MISSING) if isinstance(self.operand, Var) else self.operand
        return compare(self.op, resolve_path(fact, self.path), right)

    def __str__(self) -> str:
        operand = self.operand if isinstance(self.operand, Var) else json.dumps(self.operand)
        return f"{'.'.join(self.path)} {self.op} {operand}"


def _path(text: str, where: str) -> tuple[str, ...]:
    parts = tuple(text.split("."))
    if parts[0] not in _ROOTS or (parts[0] in ("kind", "key", "version") and len(parts) > 1) or (
        parts[0] == "labels" and len(parts) != 2
    ) or (parts[0] == "spec" and len(parts) < 2) or not all(parts):
        raise RuleError(
            f"condition {where!r}: path {text!r} is not kind, key, version, labels.<name> or spec.<field>"
        )
    return parts


def _operand(text: str, where: str) -> Any:
    if text.startswith("$"):
        name = text[1:]
        if not name.isidentifier():
            raise RuleError(f"condition {where!r}: variable {text!r}: expected $ and a name (letters, digits, _)")
        return Var(name)
    try:
        return freeze(json.loads(text))
    except ValueError:
        pass
    if not _BARE_WORD.match(text):
        raise RuleError(f"condition {where!r}: operand {text!r} is not a JSON value, a bare word or a $variable")
    return text  # a bare word is a string


@dataclass(frozen=True, slots=True)
class Pattern:
    """Facts of ``kind`` selected by ``selector`` that satisfy every ``where`` condition;
    ``name`` refers to the matched fact in the action (``match["d"]``)."""

    kind: str
    selector: LabelSelector = field(default_factory=LabelSelector)
    where: tuple[Condition, ...] = ()
    name: str | None = None

    def __init__(
        self,
        kind: str,
        selector: LabelSelector | str | Mapping[str, Any] | None = None,
        where: Iterable[Condition | str | Sequence[Any]] = (),
        name: str | None = None,
    ) -> None:
        if not isinstance(kind, str) or not kind:
            raise RuleError(f"pattern: 'kind' must name a kind, got {kind!r}")
        if isinstance(where, str):
            where = [where]
        object.__setattr__(self, "kind", kind)
        try:
            object.__setattr__(self, "selector", LabelSelector.of(selector))
        except SelectorError as exc:
            raise RuleError(f"pattern {kind!r}: {exc}") from None
        object.__setattr__(self, "where", tuple(Condition.of(c) for c in where))
        object.__setattr__(self, "name", name)

    def __str__(self) -> str:
        text = self.kind + (f" [{self.selector}]" if self.selector else "")
        if self.where:
            text += ": " + ", ".join(str(c) for c in self.where)
        return f"{self.name}={text}" if self.name else text


@dataclass(frozen=True, slots=True)
class Not:
    """Holds while no fact matches ``pattern`` (with the variables bound so far)."""

    pattern: Pattern

    def __str__(self) -> str:
        return f"not {self.pattern}"


Element = Pattern | Not


@dataclass(slots=True)
class Match:
    """What an action gets: the rule, the facts by pattern name, the variables."""

    rule: str
    facts: dict[str, StateObject]
    bindings: dict[str, Any]
    matched: tuple[StateObject, ...]

    def __getitem__(self, name: str) -> Any:
        if name in self.facts:
            return self.facts[name]
        return self.bindings[name]


Action = Callable[[Match], Any]


@dataclass(slots=True)
class Rule:
    """``when`` every element holds, ``then`` runs with the :class:`Match`; it returns the
    Commands/Events to dispatch (one, a list, or None). Higher ``salience`` fires first."""

    name: str
    when: tuple[Element, ...]
    then: Action | None = None
    salience: int = 0

    def __post_init__(self) -> None:
        self.when = tuple(self.when)
        if not self.when:
            raise RuleError(f"rule {self.name!r}: 'when' needs at least one pattern")
        bound: set[str] = set()
        names: set[str] = set()
        for index, element in enumerate(self.when):
            if not isinstance(element, (Pattern, Not)):
                raise RuleError(f"rule {self.name!r}: when[{index}] is not a Pattern or Not, got {element!r}")
            pattern = element.pattern if isinstance(element, Not) else element
            if pattern.name is not None:
                if isinstance(element, Not):
                    raise RuleError(f"rule {self.name!r}: when[{index}]: a 'not' pattern matches no fact to name")
                if pattern.name in names:
                    raise RuleError(f"rule {self.name!r}: when[{index}]: name {pattern.name!r} is used twice")
                names.add(pattern.name)
            local = set(bound)
            for condition in pattern.where:
                if not isinstance(condition.operand, Var) or condition.operand.name in local:
                    continue
                if condition.op != "==" or isinstance(element, Not):
                    raise RuleError(
                        f"rule {self.name!r}: when[{index}]: variable ${condition.operand.name} is used in "
                        f"{str(condition)!r} before a pattern binds it (bind it with '<path> == "
                        f"${condition.operand.name}' in an earlier positive pattern)"
                    )
                local.add(condition.operand.name)
            if isinstance(element, Pattern):
                bound = local

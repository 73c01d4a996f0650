"""Label selectors with Kubernetes semantics.

A selector is a conjunction of requirements over an object's labels (``dict[str, str]``):

============================  =================================================
``env=prod``, ``env==prod``   the label is present and equals the value
``env!=prod``                 the label is absent, or differs
``env in (prod, staging)``    the label is present and one of the values
``env notin (dev)``           the label is absent, or none of the values
``env``                       the label is present (any value)
``!env``                      the label is absent
============================  =================================================

Requirements are separated by commas and all must hold; the empty selector selects every
object. The structured form is Kubernetes' ``matchLabels`` (equalities) AND
``matchExpressions`` (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``). A string that does not
parse is a :class:`SelectorError` naming the position of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bollydog.errors import DomainError

__all__ = ["LabelSelector", "Requirement", "SelectorError", "parse_selector"]

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

# Kubernetes: a name is at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends;
# a key may carry a DNS-subdomain prefix ("example.com/") of at most 253 characters.
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_EXPRESSION_OPERATORS: dict[str, Operator] = {
    "In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists",
}


class SelectorError(DomainError, ValueError):
    """A label selector does not parse, or names an invalid key, value or operator."""

    status_code = 422
    exit_code = 2

    def __init__(self, message: str, *, selector: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"invalid label selector {selector!r}: {message}{where}")
        self.selector = selector
        self.position = position


def check_key(key: str, selector: str = "", position: int | None = None) -> str:
    """``key`` if it is a valid label key, else a :class:`SelectorError`."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise SelectorError(f"invalid label key prefix {prefix!r}", selector=selector or key, position=position)
    if not name or len(name) > 63 or not _NAME.match(name):
        raise SelectorError(
            f"invalid label key {key!r} (at most 63 characters of A-Z a-z 0-9 - _ ., "
            "alphanumeric at both ends)",
            selector=selector or key, position=position,
        )
    return key


def check_value(value: str, selector: str = "", position: int | None = None) -> str:
    """``value`` if it is a valid label value (the empty string is one)."""
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise SelectorError(
            f"invalid label value {value!r} (empty, or at most 63 characters of A-Z a-z 0-9 - _ ., "
            "alphanumeric at both ends)",
            selector=selector or value, position=position,
        )
    return value


def check_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    """``labels`` if it is a valid label set, else a ``ValueError`` naming the bad label."""
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"labels map strings to strings, got {key!r}: {value!r}")
        try:
            check_key(key)
            check_value(value)
        except SelectorError as exc:
            detail = str(exc).split(": ", 1)[1]
            raise ValueError(f"label {key}={value}: {detail}") from None
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on a label: ``key``, an operator, and the values it compares with."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if op == "=" or op == "in":
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin

    def __str__(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!exists":
            return f"!{self.key}"
        if op in ("=", "!="):
            return f"{self.key}{op}{next(iter(self.values))}"
        return f"{self.key} {op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of :class:`Requirement`; ``LabelSelector()`` selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def equalities(self) -> dict[str, frozenset[str]]:
        """Labels every selected object has with one of these values (``=`` and ``in``)."""
        return {r.key: r.values for r in self.requirements if r.operator in ("=", "in")}

    @classmethod
    def parse(cls, text: str) -> "LabelSelector":
        return parse_selector(text)

    @classmethod
    def of(cls, value: "LabelSelector | str | Mapping[str, Any] | None") -> "LabelSelector":
        """A selector from what a caller gave: a selector, its string form, or the structured
        ``{"matchLabels": {...}, "matchExpressions": [...]}`` form (a plain label mapping is
        read as ``matchLabels``)."""
        if value is None:
            return cls()
        if isinstance(value, LabelSelector):
            return value
        if isinstance(value, str):
            return parse_selector(value)
        if isinstance(value, Mapping):
            if set(value) <= {"matchLabels", "matchExpressions"} and value:
                return cls.from_match(value.get("matchLabels") or {}, value.get("matchExpressions") or [])
            return cls.from_match(value, [])
        raise SelectorError(f"expected a string or a mapping, got {type(value).__name__}", selector=repr(value))

    @classmethod
    def from_match(
        cls, match_labels: Mapping[str, Any], match_expressions: Iterable[Mapping[str, Any]] = ()
    ) -> "LabelSelector":
        """Kubernetes' structured form: ``matchLabels`` AND ``matchExpressions``."""
        shown = f"matchLabels={dict(match_labels)!r}, matchExpressions={list(match_expressions)!r}"
        if not isinstance(match_labels, Mapping):
            raise SelectorError("matchLabels must be a mapping", selector=shown)
        reqs: list[Requirement] = []
        for key, value in match_labels.items():
            if not isinstance(value, str):
                raise SelectorError(f"matchLabels[{key!r}] must be a string", selector=shown)
            reqs.append(Requirement(check_key(str(key), shown), "=", frozenset({check_value(value, shown)})))
        for index, expr in enumerate(match_expressions):
            where = f"matchExpressions[{index}]"
            if not isinstance(expr, Mapping) or "key" not in expr or "operator" not in expr:
                raise SelectorError(f"{where} needs 'key' and 'operator'", selector=shown)
            unknown = sorted(set(expr) - {"key", "operator", "values"})
            if unknown:
                raise SelectorError(f"{where} has unknown field(s) {', '.join(unknown)}", selector=shown)
            op = _EXPRESSION_OPERATORS.get(str(expr["operator"]))
            if op is None:
                raise SelectorError(
                    f"{where}.operator {expr['operator']!r} is not one of {', '.join(_EXPRESSION_OPERATORS)}",
                    selector=shown,
                )
            values = expr.get("values") or []
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise SelectorError(f"{where}.values must be a list of strings", selector=shown)
            if op in ("in", "notin") and not values:
                raise SelectorError(f"{where}: operator {expr['operator']} needs values", selector=shown)
            if op in ("exists", "!exists") and values:
                raise SelectorError(f"{where}: operator {expr['operator']} takes no values", selector=shown)
            reqs.append(Requirement(
                check_key(str(expr["key"]), shown), op, frozenset(check_value(v, shown) for v in values)
            ))
        return cls(tuple(reqs))


# -- the string form -------------------------------------------------------------------------

_SPECIAL = frozenset(" \t\n,=!()")


@dataclass(slots=True)
class _Token:
    kind: str  # "id", ",", "(", ")", "=", "==", "!=", "!", "end"
    text: str
    position: int


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in ",()":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch == "=":
            op = "==" if text.startswith("==", i) else "="
            tokens.append(_Token(op, op, i))
            i += len(op)
        elif ch == "!":
            op = "!=" if text.startswith("!=", i) else "!"
            tokens.append(_Token(op, op, i))
            i += len(op)
        else:
            start = i
            while i < n and text[i] not in _SPECIAL:
                i += 1
            tokens.append(_Token("id", text[start:i], start))
    tokens.append(_Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.at = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, message: str, token: _Token) -> SelectorError:
        found = "the end" if token.kind == "end" else repr(token.text)
        return SelectorError(f"{message}, found {found}", selector=self.text, position=token.position)

    def parse(self) -> LabelSelector:
        if self.peek().kind == "end":
            return LabelSelector()
        reqs = [self.requirement()]
        while True:
            token = self.take()
            if token.kind == "end":
                return LabelSelector(tuple(reqs))
            if token.kind != ",":
                raise self.fail("expected ',' or the end", token)
            reqs.append(self.requirement())

    def key(self) -> str:
        token = self.take()
        if token.kind != "id" or token.text in ("in", "notin"):
            raise self.fail("expected a label key", token)
        return check_key(token.text, self.text, token.position)

    def value(self) -> str:
        token = self.peek()
        if token.kind != "id":  # an empty value (``env=``) is a value
            return ""
        self.take()
        return check_value(token.text, self.text, token.position)

    def requirement(self) -> Requirement:
        if self.peek().kind == "!":
            self.take()
            return Requirement(self.key(), "!exists")
        key = self.key()
        token = self.peek()
        if token.kind in (",", "end"):
            return Requirement(key, "exists")
        self.take()
        if token.kind in ("=", "=="):
            return Requirement(key, "=", frozenset({self.value()}))
        if token.kind == "!=":
            return Requirement(key, "!=", frozenset({self.value()}))
        if token.kind == "id" and token.text in ("in", "notin"):
            return Requirement(key, "in" if token.text == "in" else "notin", self.values())
        raise self.fail("expected '=', '==', '!=', 'in', 'notin', ',' or the end", token)

    def values(self) -> frozenset[str]:
        opening = self.take()
        if opening.kind != "(":
            raise self.fail("expected '('", opening)
        values = {self.value()}
        while True:
            token = self.take()
            if token.kind == ")":
                break
            if token.kind != ",":
                raise self.fail("expected ',' or ')'", token)
            values.add(self.value())
        if values == {""} and self.tokens[self.at - 2].kind == "(":
            raise SelectorError("'in' and 'notin' need at least one value", selector=self.text,
                                position=opening.position)
        return frozenset(values)


def parse_selector(text: str) -> LabelSelector:
    """The :class:`LabelSelector` of ``text`` (``"env=prod,tier in (web,api),!canary"``)."""
    if not isinstance(text, str):
        raise SelectorError(f"expected a string, got {type(text).__name__}", selector=repr(text))
    return _Parser(text).parse()

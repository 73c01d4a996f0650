"""The reference matcher: every rule evaluated against every fact, from scratch.

Slow by design (rules x facts^patterns); the Rete network must agree with it. The tests run
both on random streams of changes, and ``benchmarks/rules.py`` measures the difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bollydog.rules.patterns import MISSING, Not, Pattern, Rule, Var, resolve_path
from bollydog.state.objects import Change, StateObject

__all__ = ["NaiveMatcher"]

Identity = tuple[Any, ...]


class NaiveMatcher:
    """Recomputes every match after every change; fires the matches that are new."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self.facts: dict[tuple[str, str], StateObject] = {}
        self.previous: set[Identity] = set()

    def apply(self, change: Change) -> None:
        if change.type == "DELETED":
            self.facts.pop(change.object.ref, None)
        else:
            self.facts[change.object.ref] = change.object

    def matches(self) -> list[tuple[tuple[Any, ...], Identity]]:
        """Every complete match: (firing order key, identity)."""
        found = []
        by_kind: dict[str, list[StateObject]] = {}
        for fact in sorted(self.facts.values(), key=lambda f: f.ref):
            by_kind.setdefault(fact.kind, []).append(fact)
        for order, rule in enumerate(self.rules):
            for chosen in self._extend(rule.when, by_kind, {}, ()):
                versions = tuple(f.version for f in chosen if f is not None)
                identity = (rule.name, tuple((f.kind, f.key, f.version) if f else None for f in chosen))
                found.append(((-rule.salience, order, versions), identity))
        return found

    def _extend(self, elements: tuple[Any, ...], by_kind: dict[str, list[StateObject]], bindings: dict[str, Any],
                chosen: tuple[StateObject | None, ...]) -> Iterable[tuple[StateObject | None, ...]]:
        # Only the grouping by kind spares work: every object of the kind is tested again.
        if not elements:
            yield chosen
            return
        element, rest = elements[0], elements[1:]
        if isinstance(element, Not):
            candidates = by_kind.get(element.pattern.kind, [])
            if not any(_bind(element.pattern, f, bindings) is not None for f in candidates):
                yield from self._extend(rest, by_kind, bindings, (*chosen, None))
            return
        for fact in by_kind.get(element.kind, []):
            extended = _bind(element, fact, bindings)
            if extended is not None:
                yield from self._extend(rest, by_kind, extended, (*chosen, fact))

    def fire(self) -> list[Identity]:
        """The matches that were not there after the previous call, in firing order."""
        current = self.matches()
        fired = sorted((key, identity) for key, identity in current if identity not in self.previous)
        self.previous = {identity for _, identity in current}
        return [identity for _, identity in fired]


def _bind(pattern: Pattern, fact: StateObject, bindings: dict[str, Any]) -> dict[str, Any] | None:
    if fact.kind != pattern.kind or not pattern.selector.matches(fact.labels):
        return None
    out = dict(bindings)
    for condition in pattern.where:
        operand = condition.operand
        if isinstance(operand, Var) and operand.name not in out and condition.op == "==":
            value = resolve_path(fact, condition.path)
            if value is MISSING:
                return None
            out[operand.name] = value
        elif not condition.test(fact, out):
            return None
    return out

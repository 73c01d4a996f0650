"""A Rete network over state objects: shared alpha nodes, hash joins, incremental changes.

Facts enter by kind. Alpha nodes (kind + label selector + constant conditions) are shared by
every rule that uses the same pattern; per kind they are indexed by one of their label
equalities (``env=prod``, or each value of ``env in (...)``), so a fact is tested only against
nodes whose indexed label it carries, and against the few that have no equality. Each rule is a
chain of join nodes (positive and negative); each join keeps its left tokens and right facts
in hash tables keyed by the values of its join variables, so an insert looks up exactly the
partners that can match. Tokens form a tree (a child remembers its parent and the fact it
added), so retracting a fact removes exactly the matches that used it. An update is the
retraction of the old version and the insertion of the new one.

Complete matches become activations on the agenda: higher salience first, then the order the
rules were added, then older facts first. An activation fires once (refraction); it is
dropped, unfired, when a fact it used changes or goes.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bollydog.errors import DomainError
from bollydog.rules.patterns import MISSING, Condition, Match, Not, Pattern, Rule, RuleError, Var, resolve_path
from bollydog.state.objects import Change, StateObject
from bollydog.state.selectors import LabelSelector

__all__ = ["Activation", "Firing", "ReteNetwork", "UnknownRuleError"]

Ref = tuple[str, str]


class UnknownRuleError(DomainError, LookupError):
    """No rule has that name."""

    status_code = 404
    exit_code = 2


class Token:
    """A partial match: the facts of the first n patterns (None for a ``Not``) and bindings."""

    __slots__ = ("parent", "fact", "bindings", "children", "holder", "blockers")

    def __init__(self, parent: "Token | None", fact: StateObject | None, bindings: dict[str, Any]) -> None:
        self.parent = parent
        self.fact = fact
        self.bindings = bindings
        self.children: dict[int, Token] = {}
        self.holder: _Node = _NO_NODE
        self.blockers: set[Ref] = set()  # at a negative node: the facts that block it

    def facts(self) -> list[StateObject | None]:
        out: list[StateObject | None] = []
        token: Token | None = self
        while token is not None and token.parent is not None:
            out.append(token.fact)
            token = token.parent
        out.reverse()
        return out


class _Node:
    """Something that receives tokens from its left (its parent join, or the root)."""

    def left_activate(self, token: Token) -> None:
        raise NotImplementedError

    def forget(self, token: Token) -> None:
        """``token`` is gone: drop it from this node's memory."""
        raise NotImplementedError

    def unproduce(self, child: Token) -> None:
        """``child`` (produced here) is gone."""


_NO_NODE = _Node()


def remove_token(token: Token) -> None:
    """Remove ``token`` and every match built on it."""
    holder = token.holder
    holder.forget(token)
    children = token.children
    token.children = {}
    for child in children.values():
        holder.unproduce(child)
        remove_token(child)


@dataclass(eq=False, slots=True)
class AlphaNode:
    """Facts of one kind that a selector and constant conditions select; shared by rules."""

    kind: str
    selector: LabelSelector
    tests: tuple[Condition, ...]
    memory: dict[Ref, StateObject] = field(default_factory=dict)
    successors: list["_Join"] = field(default_factory=list)

    def test(self, fact: StateObject) -> bool:
        return self.selector.matches(fact.labels) and all(t.test(fact, {}) for t in self.tests)


class _Join(_Node):
    """Joins left tokens with the facts of an alpha node on the values of join variables."""

    def __init__(self, pattern: Pattern, alpha: AlphaNode, bound: set[str]) -> None:
        self.pattern = pattern
        self.alpha = alpha
        self.keys: list[tuple[tuple[str, ...], str]] = []  # (path, variable bound earlier): hashed
        self.binds: list[tuple[tuple[str, ...], str]] = []  # (path, variable this pattern binds)
        self.tests: list[Condition] = []  # other comparisons with variables
        binding = set(bound)
        for condition in pattern.where:
            operand = condition.operand
            if not isinstance(operand, Var):
                continue
            if condition.op == "==" and operand.name in bound:
                self.keys.append((condition.path, operand.name))
            elif condition.op == "==" and operand.name not in binding:
                self.binds.append((condition.path, operand.name))
                binding.add(operand.name)
            else:
                self.tests.append(condition)
        self.left: dict[tuple[Any, ...], dict[int, Token]] = {}
        self.right: dict[tuple[Any, ...], dict[Ref, StateObject]] = {}
        self.child: _Node = _NO_NODE

    def left_key(self, token: Token) -> tuple[Any, ...]:
        return tuple(token.bindings.get(var, MISSING) for _, var in self.keys)

    def right_key(self, fact: StateObject) -> tuple[Any, ...] | None:
        key = tuple(resolve_path(fact, path) for path, _ in self.keys)
        return None if MISSING in key else key

    def extend(self, token: Token, fact: StateObject) -> dict[str, Any] | None:
        """The bindings of ``token`` joined with ``fact``, or None when a test fails."""
        bindings = token.bindings
        if self.binds:
            bindings = dict(bindings)
            for path, var in self.binds:
                value = resolve_path(fact, path)
                if value is MISSING:
                    return None
                bindings[var] = value
        for test in self.tests:
            if not test.test(fact, bindings):
                return None
        return bindings

    def emit(self, parent: Token, fact: StateObject | None, bindings: dict[str, Any]) -> None:
        child = Token(parent, fact, bindings)
        parent.children[id(child)] = child
        child.holder = self.child
        self.child.left_activate(child)

    def right_activate(self, fact: StateObject) -> None:
        raise NotImplementedError

    def right_retract(self, fact: StateObject) -> None:
        raise NotImplementedError

    def forget(self, token: Token) -> None:
        bucket = self.left.get(self.left_key(token))
        if bucket is not None:
            bucket.pop(id(token), None)
            if not bucket:
                del self.left[self.left_key(token)]

    def add_right(self, fact: StateObject) -> tuple[Any, ...] | None:
        key = self.right_key(fact)
        if key is not None:
            self.right.setdefault(key, {})[fact.ref] = fact
        return key

    def remove_right(self, fact: StateObject) -> tuple[Any, ...] | None:
        key = self.right_key(fact)
        if key is not None:
            bucket = self.right.get(key)
            if bucket is not None:
                bucket.pop(fact.ref, None)
                if not bucket:
                    del self.right[key]
        return key


class JoinNode(_Join):
    """A positive pattern: one child token per (left token, matching fact)."""

    def __init__(self, pattern: Pattern, alpha: AlphaNode, bound: set[str]) -> None:
        super().__init__(pattern, alpha, bound)
        self.produced: dict[Ref, dict[int, Token]] = {}

    def emit(self, parent: Token, fact: StateObject | None, bindings: dict[str, Any]) -> None:
        assert fact is not None
        child = Token(parent, fact, bindings)
        parent.children[id(child)] = child
        self.produced.setdefault(fact.ref, {})[id(child)] = child
        child.holder = self.child
        self.child.left_activate(child)

    def unproduce(self, child: Token) -> None:
        if child.fact is not None:
            bucket = self.produced.get(child.fact.ref)
            if bucket is not None:
                bucket.pop(id(child), None)

    def left_activate(self, token: Token) -> None:
        key = self.left_key(token)
        self.left.setdefault(key, {})[id(token)] = token
        for fact in list(self.right.get(key, {}).values()):
            bindings = self.extend(token, fact)
            if bindings is not None:
                self.emit(token, fact, bindings)

    def right_activate(self, fact: StateObject) -> None:
        key = self.add_right(fact)
        if key is None:
            return
        for token in list(self.left.get(key, {}).values()):
            bindings = self.extend(token, fact)
            if bindings is not None:
                self.emit(token, fact, bindings)

    def right_retract(self, fact: StateObject) -> None:
        self.remove_right(fact)
        for child in list(self.produced.pop(fact.ref, {}).values()):
            parent = child.parent
            if parent is not None:
                parent.children.pop(id(child), None)
            remove_token(child)


class NegativeNode(_Join):
    """A ``Not``: passes a left token on while no fact matches it."""

    def left_activate(self, token: Token) -> None:
        key = self.left_key(token)
        self.left.setdefault(key, {})[id(token)] = token
        token.blockers = {
            ref for ref, fact in self.right.get(key, {}).items() if self.extend(token, fact) is not None
        }
        if not token.blockers:
            self.emit(token, None, token.bindings)

    def right_activate(self, fact: StateObject) -> None:
        key = self.add_right(fact)
        if key is None:
            return
        for token in list(self.left.get(key, {}).values()):
            if self.extend(token, fact) is None:
                continue
            token.blockers.add(fact.ref)
            if len(token.blockers) == 1:
                children = token.children
                token.children = {}
                for child in children.values():
                    remove_token(child)

    def right_retract(self, fact: StateObject) -> None:
        key = self.remove_right(fact)
        if key is None:
            return
        for token in list(self.left.get(key, {}).values()):
            if fact.ref in token.blockers:
                token.blockers.discard(fact.ref)
                if not token.blockers:
                    self.emit(token, None, token.bindings)


@dataclass(slots=True)
class Activation:
    """A complete match waiting on the agenda."""

    rule: Rule
    order: int
    token: Token
    facts: tuple[StateObject | None, ...]

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes a match the same match: the rule and the facts, at their versions."""
        return (self.rule.name, tuple((f.kind, f.key, f.version) if f is not None else None for f in self.facts))

    def sort_key(self) -> tuple[Any, ...]:
        return (-self.rule.salience, self.order, tuple(f.version for f in self.facts if f is not None))

    def match(self) -> Match:
        named: dict[str, StateObject] = {}
        for element, fact in zip(self.rule.when, self.facts, strict=True):
            if isinstance(element, Pattern) and element.name and fact is not None:
                named[element.name] = fact
        return Match(self.rule.name, named, dict(self.token.bindings),
                     tuple(f for f in self.facts if f is not None))


@dataclass(slots=True)
class Firing:
    """A fired activation, kept for :meth:`ReteNetwork.explain`."""

    rule: str
    salience: int
    facts: list[dict[str, Any]]
    bindings: dict[str, Any]
    why: list[str]


class _Terminal(_Node):
    def __init__(self, network: "ReteNetwork", rule: Rule, order: int) -> None:
        self.network, self.rule, self.order = network, rule, order
        self.pending: dict[int, Activation] = {}
        self.held: dict[int, Activation] = {}  # every complete match now, fired or not

    def left_activate(self, token: Token) -> None:
        activation = Activation(self.rule, self.order, token, tuple(token.facts()))
        self.pending[id(token)] = activation
        self.held[id(token)] = activation
        self.network._schedule(activation)

    def forget(self, token: Token) -> None:
        self.pending.pop(id(token), None)
        self.held.pop(id(token), None)


class ReteNetwork:
    """Rules compiled into one network; facts inserted, updated and retracted incrementally."""

    def __init__(self, rules: Iterable[Rule] = (), *, history: int = 1000) -> None:
        self.rules: list[Rule] = []
        self.facts: dict[Ref, StateObject] = {}
        self.alphas: dict[tuple[Any, ...], AlphaNode] = {}
        self._scan: dict[str, list[AlphaNode]] = {}  # per kind: alpha nodes without a label equality
        self._indexed: dict[str, dict[tuple[str, str], list[AlphaNode]]] = {}
        self._terminals: list[_Terminal] = []
        self._agenda: list[tuple[tuple[Any, ...], int, Activation]] = []
        self._sequence = itertools.count()
        self.history: deque[Firing] = deque(maxlen=history)
        self._roots: list[Token] = []
        self._chains: list[list[_Join]] = []
        for rule in rules:
            self.add_rule(rule)

    # -- building -----------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        if any(r.name == rule.name for r in self.rules):
            raise RuleError(f"rule {rule.name!r} is defined twice")
        order = len(self.rules)
        self.rules.append(rule)
        bound: set[str] = set()
        joins: list[_Join] = []
        for element in rule.when:
            pattern = element.pattern if isinstance(element, Not) else element
            alpha = self._alpha(pattern)
            join: _Join = NegativeNode(pattern, alpha, bound) if isinstance(element, Not) else JoinNode(pattern, alpha, bound)
            if isinstance(element, Pattern):
                bound = bound | {var for _, var in join.binds}
            for fact in alpha.memory.values():
                join.add_right(fact)
            alpha.successors.append(join)
            if joins:
                joins[-1].child = join
            joins.append(join)
        terminal = _Terminal(self, rule, order)
        joins[-1].child = terminal
        self._chains.append(joins)
        self._terminals.append(terminal)
        # Each rule has a root token of its own: a negative first element counts its blockers on it.
        root = Token(None, None, {})
        self._roots.append(root)
        joins[0].left_activate(root)

    def _alpha(self, pattern: Pattern) -> AlphaNode:
        tests = tuple(sorted((c for c in pattern.where if not isinstance(c.operand, Var)), key=str))
        key = (pattern.kind, str(pattern.selector), tuple(str(t) for t in tests))
        alpha = self.alphas.get(key)
        if alpha is not None:
            return alpha
        alpha = self.alphas[key] = AlphaNode(pattern.kind, pattern.selector, tests)
        equalities = pattern.selector.equalities()
        if equalities:
            label, values = next(iter(equalities.items()))
            index = self._indexed.setdefault(pattern.kind, {})
            for value in values:
                index.setdefault((label, value), []).append(alpha)
        else:
            self._scan.setdefault(pattern.kind, []).append(alpha)
        for fact in self.facts.values():
            if fact.kind == alpha.kind and alpha.test(fact):
                alpha.memory[fact.ref] = fact
        return alpha

    # -- facts --------------------------------------------------------------------------------

    def candidates(self, fact: StateObject) -> Iterator[AlphaNode]:
        """Alpha nodes that may select ``fact``: through its labels' index entries, and those
        without a label equality."""
        yield from self._scan.get(fact.kind, ())
        index = self._indexed.get(fact.kind)
        if index:
            for item in fact.labels.items():
                yield from index.get(item, ())

    def insert(self, fact: StateObject) -> None:
        """Add ``fact``, or replace the fact of the same kind and key (an update)."""
        if fact.ref in self.facts:
            self.retract(fact.ref)
        self.facts[fact.ref] = fact
        for alpha in self.candidates(fact):
            if alpha.test(fact):
                alpha.memory[fact.ref] = fact
                for join in alpha.successors:
                    join.right_activate(fact)

    update = insert

    def retract(self, ref: Ref) -> StateObject | None:
        """Remove the fact of ``ref``; the matches it took part in are dropped."""
        fact = self.facts.pop(ref, None)
        if fact is None:
            return None
        for alpha in self.candidates(fact):
            if alpha.memory.pop(ref, None) is not None:
                for join in alpha.successors:
                    join.right_retract(fact)
        return fact

    def apply(self, change: Change) -> None:
        """A change of the state store: ``DELETED`` retracts, the others insert."""
        if change.type == "DELETED":
            self.retract(change.object.ref)
        else:
            self.insert(change.object)

    # -- agenda -------------------------------------------------------------------------------

    def _schedule(self, activation: Activation) -> None:
        heapq.heappush(self._agenda, (activation.sort_key(), next(self._sequence), activation))

    def agenda(self) -> list[Activation]:
        """Activations waiting to fire, in firing order."""
        live = [a for _, _, a in self._agenda if self._pending(a)]
        return sorted(live, key=Activation.sort_key)

    def _pending(self, activation: Activation) -> bool:
        terminal = self._terminals[activation.order]
        return terminal.pending.get(id(activation.token)) is activation

    def pop(self) -> Activation | None:
        """The next activation to fire (it will not fire again while its facts stay), or None."""
        while self._agenda:
            _, _, activation = heapq.heappop(self._agenda)
            if self._pending(activation):
                del self._terminals[activation.order].pending[id(activation.token)]
                self.history.append(self._firing(activation))
                return activation
        return None

    def fire_all(self) -> list[Activation]:
        fired = []
        while (activation := self.pop()) is not None:
            fired.append(activation)
        return fired

    # -- explanation --------------------------------------------------------------------------

    def _firing(self, activation: Activation) -> Firing:
        why = []
        for element, fact in zip(activation.rule.when, activation.facts, strict=True):
            if isinstance(element, Not):
                why.append(f"{element}: no such fact")
            elif fact is not None:
                why.append(f"{element}: matched {fact.kind}/{fact.key} at version {fact.version}")
        return Firing(
            rule=activation.rule.name,
            salience=activation.rule.salience,
            facts=[{"kind": f.kind, "key": f.key, "version": f.version, "labels": f.labels}
                   for f in activation.facts if f is not None],
            bindings=dict(activation.token.bindings),
            why=why,
        )

    def explain(self, rule: str | None = None) -> dict[str, Any]:
        """Why rules fired and where they stand.

        ``fired``: the recent firings, newest last. ``pending``: activations waiting on the
        agenda. ``rules``: per rule, its matches now (fired or not) and, per pattern, how many
        objects it selects and how many partial matches it lets through, which is where a rule
        that does not fire stops.
        """
        known = [r.name for r in self.rules]
        if rule is not None and rule not in known:
            raise UnknownRuleError(f"unknown rule {rule!r}; known: {', '.join(known) or '(none)'}", rule=rule)
        chosen = [i for i, r in enumerate(self.rules) if rule is None or r.name == rule]
        fired = [f for f in self.history if rule is None or f.rule == rule]
        pending = [self._firing(a) for a in self.agenda() if rule is None or a.rule.name == rule]
        rules = []
        for index in chosen:
            terminal = self._terminals[index]
            patterns = []
            for join in self._chains[index]:
                tokens = [t for bucket in join.left.values() for t in bucket.values()]
                patterns.append({
                    "pattern": str(join.pattern) if isinstance(join, JoinNode) else f"not {join.pattern}",
                    "objects": len(join.alpha.memory),
                    "partial_matches_in": len(tokens),
                    "partial_matches_out": sum(len(t.children) for t in tokens),
                })
            matches = sorted(terminal.held.values(), key=Activation.sort_key)
            rules.append({
                "rule": self.rules[index].name,
                "salience": self.rules[index].salience,
                "patterns": patterns,
                "matches": [{**vars_of(self._firing(a)), "pending": id(a.token) in terminal.pending}
                            for a in matches],
            })
        return {"fired": fired, "pending": pending, "rules": rules, "facts": len(self.facts),
                "alpha_nodes": len(self.alphas)}


def vars_of(firing: Firing) -> dict[str, Any]:
    return {"facts": firing.facts, "bindings": firing.bindings, "why": firing.why}

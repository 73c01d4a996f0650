"""CLIPS (through clipspy) as a second oracle: the random rules of the differential tests
translated to CLIPS rules, the same streams of changes asserted and retracted there.

CLIPS orders activations of equal salience by its own strategy, not by ours, so each step
compares the firings as a multiset and checks that both fire in non-increasing salience.
Skipped where clipspy does not install.
"""

from __future__ import annotations

import random

import pytest

from bollydog.rules.network import ReteNetwork
from bollydog.rules.patterns import Not, Pattern, Rule, Var
from bollydog.state.objects import Change, StateObject
from bollydog.state.selectors import Requirement
from tests.rules.test_differential import KINDS, random_fact, random_rules

clips = pytest.importorskip("clips", reason="clipspy is not installed (it comes with the dev extra)")

_OPS = {">": ">", "<": "<", ">=": ">=", "<=": "<=", "==": "eq", "!=": "neq"}


def _selector(req: Requirement) -> tuple[str, str]:
    values = "|".join(sorted(req.values))
    return req.key, {
        "=": values, "in": values, "!=": f"~{values}" if len(req.values) == 1 else "",
        "notin": "&".join(f"~{v}" for v in sorted(req.values)), "exists": "~nil", "!exists": "nil",
    }[req.operator]


def _slots(pattern: Pattern, position: int, bound: set[str], probe: bool) -> tuple[dict[str, list[str]], set[str]]:
    """CLIPS slot constraints of ``pattern``; ``probe``: with every variable left free, to ask
    CLIPS whether the constants alone can match."""
    constraints: dict[str, list[str]] = {"kind": [pattern.kind]}
    binder: dict[str, str] = {}  # slot -> the variable bound on it (CLIPS: first, at most one)
    tests: dict[str, list[str]] = {}  # slot -> predicates on that variable
    for req in pattern.selector.requirements:
        name, constraint = _selector(req)
        constraints.setdefault(name, []).append(constraint)
    local = set(bound)
    for cond in pattern.where:
        slot = cond.path[-1]
        if isinstance(cond.operand, Var):
            var = cond.operand.name
            if cond.op == "==" and var not in local and slot not in binder:
                binder[slot] = f"?{var}"
                constraints.setdefault(slot, []).append("~nil")  # a missing field never binds
                local.add(var)
            elif not probe and cond.op == "==" and var in local:
                constraints.setdefault(slot, []).append(f"?{var}")
            elif not probe:
                tests.setdefault(slot, []).append(f"(and (integerp {{v}}) ({_OPS[cond.op]} {{v}} ?{var}))")
        elif cond.op in ("==", "!="):
            constraints.setdefault(slot, []).append(f"{'~' if cond.op == '!=' else ''}{cond.operand}")
        else:
            tests.setdefault(slot, []).append(f"(and (integerp {{v}}) ({cond.op} {{v}} {cond.operand}))")
    slots: dict[str, list[str]] = {}
    for slot in dict.fromkeys([*constraints, *tests]):
        var = binder.get(slot) if not probe else None
        if var is None and tests.get(slot):
            var = f"?s{position}_{slot}"
        terms = [var] if var else []
        terms += constraints.get(slot, [])
        terms += [":" + t.format(v=var) for t in tests.get(slot, [])]
        slots[slot] = terms
    return slots, local


def _body(slots: dict[str, list[str]]) -> str:
    return " ".join(f"({slot} {'&'.join(c for c in cs if c) or '?'})" for slot, cs in slots.items())


def _matchable(env, pattern: Pattern) -> bool:
    # CLIPS refuses to build a pattern whose constants conflict (``(tier nil&y)``): it can
    # match nothing, which our network must agree with.
    slots, _ = _slots(pattern, 0, set(), probe=True)
    try:
        env.build(f"(defrule probe (obj {_body(slots)}) =>)")
    except clips.CLIPSError:
        return False
    env.find_rule("probe").undefine()
    return True


def translate(env, rule: Rule, index: int) -> str | None:
    """The CLIPS rule, or None when a positive pattern can match nothing."""
    bound: set[str] = set()
    lhs, rhs = [], []
    for position, element in enumerate(rule.when):
        pattern: Pattern = element.pattern if isinstance(element, Not) else element
        if not _matchable(env, pattern):
            if isinstance(element, Not):
                rhs.append("nil")  # nothing can block it: the 'not' always holds
                continue
            return None
        slots, local = _slots(pattern, position, bound, probe=False)
        if isinstance(element, Not):
            lhs.append(f"(not (obj {_body(slots)}))")
            rhs.append("nil")
        else:
            slots["key"] = [f"?key{position}"]
            slots["version"] = [f"?version{position}"]
            lhs.append(f"(obj {_body(slots)})")
            rhs.append(f"?key{position} ?version{position}")
            bound = local
    if not lhs:
        lhs.append("(initial-fact)")
    return (f'(defrule {rule.name} (declare (salience {rule.salience})) {" ".join(lhs)} => '
            f'(fired {index} {rule.salience} {" ".join(rhs)}))')


class Clips:
    def __init__(self, rules: list[Rule]) -> None:
        self.env = clips.Environment()
        self.env.build("(deftemplate obj (slot kind) (slot key) (slot version) (slot env (default nil)) "
                       "(slot tier (default nil)) (slot n (default nil)) (slot g (default nil)))")
        self.rules = rules
        self.log: list[tuple[int, int, list]] = []
        self.env.define_function(lambda *args: self.log.append((args[0], args[1], list(args[2:]))), name="fired")
        for index, rule in enumerate(rules):
            construct = translate(self.env, rule, index)
            if construct is not None:
                self.env.build(construct)
        self.template = self.env.find_template("obj")
        self.facts: dict[tuple[str, str], object] = {}

    def apply(self, change: Change) -> None:
        obj = change.object
        old = self.facts.pop(obj.ref, None)
        if old is not None:
            old.retract()
        if change.type != "DELETED":
            slots = {"kind": clips.Symbol(obj.kind), "key": obj.key, "version": obj.version}
            for label in ("env", "tier"):
                if label in obj.labels:
                    slots[label] = clips.Symbol(obj.labels[label])
            for field in ("n", "g"):
                if field in obj.spec:
                    slots[field] = obj.spec[field]
            self.facts[obj.ref] = self.template.assert_fact(**slots)

    def fire(self) -> list[tuple[int, tuple]]:
        self.log.clear()
        self.env.run()
        fired = []
        for index, salience, values in self.log:
            rule = self.rules[index]
            it = iter(values)
            facts = []
            for element in rule.when:
                if isinstance(element, Not):
                    next(it)
                    facts.append(None)
                else:
                    key, version = str(next(it)), int(next(it))
                    facts.append((element.kind, key, version))
            fired.append((salience, (rule.name, tuple(facts))))
        return fired


def run_against_clips(seed: int) -> int:
    """One seeded stream through both; asserts every step; returns how many firings."""
    rng = random.Random(seed)
    rules = random_rules(rng, rng.randint(1, 8))
    rete, oracle = ReteNetwork(rules), Clips(rules)
    refs = [(kind, f"k{i}") for kind in KINDS for i in range(4)]
    live: set[tuple[str, str]] = set()
    fired_total = 0
    for version in range(1, 120):
        ref = rng.choice(refs)
        if ref in live and rng.random() < 0.3:
            change = Change(type="DELETED", object=StateObject(kind=ref[0], key=ref[1], version=version))
            live.discard(ref)
        else:
            change = Change(type="MODIFIED" if ref in live else "ADDED", object=random_fact(rng, ref, version))
            live.add(ref)
        rete.apply(change)
        oracle.apply(change)
        ours = [(a.rule.salience, a.identity) for a in rete.fire_all()]
        theirs = oracle.fire()
        assert sorted(i for _, i in ours) == sorted(i for _, i in theirs), f"seed {seed}, version {version}"
        for fired in (ours, theirs):
            saliences = [s for s, _ in fired]
            assert saliences == sorted(saliences, reverse=True)
        fired_total += len(ours)
    return fired_total


@pytest.mark.parametrize("seed", range(25))
def test_rete_fires_what_clips_fires(seed):
    run_against_clips(seed)


def test_the_clips_streams_do_fire():
    assert sum(run_against_clips(seed) for seed in range(10)) > 100

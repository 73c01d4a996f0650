"""The Rete network's semantics, one at a time (the differential tests cover their mixes)."""

from __future__ import annotations

import pytest

from bollydog.rules.network import ReteNetwork, UnknownRuleError
from bollydog.rules.patterns import Condition, Not, Pattern, Rule, RuleError
from bollydog.state.objects import StateObject

_version = iter(range(1, 10_000))


def fact(kind: str, key: str, labels=None, **spec) -> StateObject:
    return StateObject(kind=kind, key=key, labels=labels or {}, spec=spec, version=next(_version))


def fired(net: ReteNetwork) -> list[tuple[str, tuple[str, ...]]]:
    return [(a.rule.name, tuple(f.key for f in a.facts if f is not None)) for a in net.fire_all()]


def test_join_on_a_variable_and_retraction_on_update():
    rule = Rule("placed", [Pattern("device", where=["spec.site == $site"], name="d"),
                           Pattern("site", where=["key == $site", "spec.open == true"])])
    net = ReteNetwork([rule])
    net.insert(fact("device", "d1", site="s1"))
    net.insert(fact("device", "d2", site="s2"))
    assert fired(net) == []
    net.insert(fact("site", "s1", open=True))
    assert fired(net) == [("placed", ("d1", "s1"))]
    net.insert(fact("device", "d3", site="s1"))
    net.insert(fact("device", "d2", site="s9"))  # an update that matches nothing
    net.insert(fact("site", "s1", open=False))  # the site closes before anything fires
    assert fired(net) == []
    assert net.agenda() == []


def test_refraction_and_refiring_when_a_fact_changes():
    net = ReteNetwork([Rule("hot", [Pattern("device", "env=prod", ["spec.t > 80"])])])
    net.insert(fact("device", "d", {"env": "prod"}, t=90))
    assert fired(net) == [("hot", ("d",))]
    assert fired(net) == []  # fired once
    net.insert(fact("device", "d", {"env": "prod"}, t=91))  # a new version: a new match
    assert fired(net) == [("hot", ("d",))]
    net.insert(fact("device", "d", {"env": "dev"}, t=95))
    net.retract(("device", "d"))
    assert fired(net) == [] and net.facts == {}


def test_negation_blocks_and_unblocks():
    rule = Rule("orphan", [Pattern("device", where=["spec.site == $s"]),
                           Not(Pattern("site", where=["key == $s"]))])
    net = ReteNetwork([rule])
    net.insert(fact("device", "d1", site="s1"))
    site = fact("site", "s1")
    net.insert(site)
    assert fired(net) == []  # matched and unmatched before firing: nothing fires
    net.retract(site.ref)
    assert fired(net) == [("orphan", ("d1",))]


def test_salience_then_rule_order_then_older_facts():
    rules = [
        Rule("low", [Pattern("x")], salience=0),
        Rule("high", [Pattern("x")], salience=10),
        Rule("low2", [Pattern("x")], salience=0),
    ]
    net = ReteNetwork(rules)
    net.insert(fact("x", "b"))
    net.insert(fact("x", "a"))
    assert fired(net) == [("high", ("b",)), ("high", ("a",)), ("low", ("b",)), ("low", ("a",)),
                          ("low2", ("b",)), ("low2", ("a",))]


def test_json_values_join_and_missing_fields_never_match():
    rule = Rule("same-tags", [Pattern("a", where=["spec.tags == $t"]), Pattern("b", where=["spec.tags == $t"])])
    net = ReteNetwork([rule])
    net.insert(fact("a", "1", tags=["x", "y"]))
    net.insert(fact("b", "2", tags=["x", "y"]))
    net.insert(fact("b", "3"))  # no tags: not a partner
    net.insert(fact("b", "4", tags=["y", "x"]))
    assert fired(net) == [("same-tags", ("1", "2"))]
    assert Condition.of("spec.n > 3").test(fact("a", "5", n="text"), {}) is False  # no TypeError


def test_a_rule_added_late_sees_the_facts():
    net = ReteNetwork()
    net.insert(fact("x", "a", n=1))
    net.add_rule(Rule("late", [Pattern("x", where=["spec.n == 1"])]))
    assert fired(net) == [("late", ("a",))]
    with pytest.raises(RuleError, match="defined twice"):
        net.add_rule(Rule("late", [Pattern("x")]))


def test_explain_says_why():
    net = ReteNetwork([Rule("hot", [Pattern("device", "env=prod", ["spec.t > 80"], name="d")], salience=3)])
    net.insert(fact("device", "d1", {"env": "prod"}, t=90))
    pending = net.explain("hot")["pending"]
    assert len(pending) == 1 and pending[0].facts[0]["key"] == "d1"
    net.fire_all()
    why = net.explain()
    assert why["pending"] == [] and why["fired"][0].salience == 3
    assert why["fired"][0].why == [f"d=device [env=prod]: spec.t > 80: matched device/d1 at version "
                                   f"{net.facts[('device', 'd1')].version}"]
    with pytest.raises(UnknownRuleError, match="unknown rule 'cold'; known: hot"):
        net.explain("cold")


def test_explain_says_where_a_rule_stops():
    rule = Rule("placed", [Pattern("device", "env=prod", ["spec.site == $site"]),
                           Pattern("site", where=["key == $site"]),
                           Not(Pattern("maintenance", where=["spec.site == $site"]))])
    net = ReteNetwork([rule])
    for f in [fact("device", "d1", {"env": "prod"}, site="s1"), fact("device", "d2", {"env": "prod"}, site="s2"),
              fact("device", "d3", {"env": "dev"}, site="s1"), fact("site", "s1"), fact("site", "s2"),
              fact("maintenance", "m", site="s1")]:
        net.insert(f)
    stages = net.explain("placed")["rules"][0]
    assert [(p["objects"], p["partial_matches_in"], p["partial_matches_out"]) for p in stages["patterns"]] == [
        (2, 1, 2),  # two prod devices; the root passes to both
        (2, 2, 2),  # each finds its site
        (1, 2, 1),  # the maintenance of s1 blocks d1
    ]
    assert [(m["facts"][0]["key"], m["pending"]) for m in stages["matches"]] == [("d2", True)]
    net.fire_all()
    assert net.explain("placed")["rules"][0]["matches"][0]["pending"] is False


@pytest.mark.parametrize("when,words", [
    ([], "needs at least one pattern"),
    ([Not(Pattern("x", where=["spec.a == $a"]))], "before a pattern binds it"),
    ([Pattern("x", name="p"), Pattern("y", name="p")], "name 'p' is used twice"),
    (["x"], "is not a Pattern or Not"),
])
def test_malformed_rules(when, words):
    with pytest.raises(RuleError, match=words):
        Rule("r", when)

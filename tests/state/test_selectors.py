"""Label selectors: the Kubernetes table of what matches and what does not parse."""

from __future__ import annotations

import pytest

from bollydog.errors import describe
from bollydog.state.selectors import LabelSelector, SelectorError, parse_selector

LABELS = {"env": "prod", "tier": "web", "empty": ""}

# (selector, labels, selected?) -- after k8s.io/apimachinery/pkg/labels selector_test.go
CASES = [
    ("", {}, True),
    ("", LABELS, True),
    ("env=prod", LABELS, True),
    ("env==prod", LABELS, True),
    ("env=dev", LABELS, False),
    ("env=prod", {}, False),
    ("env!=dev", LABELS, True),
    ("env!=prod", LABELS, False),
    ("env!=prod", {}, True),  # absent counts as different
    ("env in (prod,staging)", LABELS, True),
    ("env in (dev, staging)", LABELS, False),
    ("env in (prod)", {}, False),
    ("env notin (dev,staging)", LABELS, True),
    ("env notin (prod)", LABELS, False),
    ("env notin (prod)", {}, True),  # absent is not in any set
    ("env", LABELS, True),
    ("env", {}, False),
    ("!env", LABELS, False),
    ("!env", {}, True),
    ("empty=", LABELS, True),
    ("empty", LABELS, True),
    ("empty=x", LABELS, False),
    ("env=prod,tier=web", LABELS, True),
    ("env=prod,tier=db", LABELS, False),
    ("env=prod, tier in (web), !canary", LABELS, True),
    ("env=prod,!tier", LABELS, False),
    ("example.com/team=a", {"example.com/team": "a"}, True),
    ("x in (a,b),x notin (b)", {"x": "a"}, True),
    ("x in (a,b),x notin (b)", {"x": "b"}, False),
]


@pytest.mark.parametrize("text,labels,selected", CASES)
def test_matching(text, labels, selected):
    assert parse_selector(text).matches(labels) is selected


@pytest.mark.parametrize("text,labels,selected", CASES)
def test_string_form_round_trips(text, labels, selected):
    again = parse_selector(str(parse_selector(text)))
    assert again == parse_selector(text)
    assert again.matches(labels) is selected


# (selector, position named in the error, words of the message)
BAD = [
    ("env=prod,", 9, "expected a label key"),
    (",env", 0, "expected a label key"),
    ("env in (a", 9, "expected ',' or ')'"),
    ("env in a", 7, "expected '('"),
    ("env in ()", 7, "at least one value"),
    ("env prod", 4, "expected '='"),
    ("env=prod x", 9, "expected ',' or the end"),
    ("!", 1, "expected a label key"),
    ("-env=prod", 0, "invalid label key"),
    ("env=-x", 4, "invalid label value"),
    ("env=" + "v" * 64, 4, "invalid label value"),
    ("env==", None, None),  # valid: empty value
    ("in=x", 0, "expected a label key"),
    ("Bad_Prefix/x=y", 0, "invalid label key prefix"),
]


@pytest.mark.parametrize("text,position,words", BAD)
def test_parse_errors_name_the_position(text, position, words):
    if words is None:
        assert parse_selector(text).matches({"env": ""})
        return
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert info.value.position == position
    assert words in str(info.value)
    assert f"at position {position}" in str(info.value)
    assert describe(info.value).status == 422


def test_match_labels_and_expressions():
    sel = LabelSelector.of({
        "matchLabels": {"env": "prod"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "Exists"},
            {"key": "team", "operator": "NotIn", "values": ["b"]},
        ],
    })
    assert sel.matches({"env": "prod", "tier": "api", "zone": "z1"})
    assert not sel.matches({"env": "prod", "tier": "api", "zone": "z1", "canary": "1"})
    assert not sel.matches({"env": "prod", "tier": "db", "zone": "z1"})
    assert not sel.matches({"env": "prod", "tier": "web"})
    assert not sel.matches({"env": "prod", "tier": "web", "zone": "z", "team": "b"})
    assert sel == parse_selector("env=prod,tier in (api,web),!canary,zone,team notin (b)")
    assert LabelSelector.of({"env": "prod"}) == parse_selector("env=prod")  # plain mapping: matchLabels
    assert not LabelSelector.of({}) and LabelSelector.of(None).matches({"a": "b"})


@pytest.mark.parametrize("expressions,words", [
    ([{"key": "a", "operator": "Has"}], "is not one of In, NotIn, Exists, DoesNotExist"),
    ([{"key": "a", "operator": "In"}], "needs values"),
    ([{"key": "a", "operator": "Exists", "values": ["x"]}], "takes no values"),
    ([{"operator": "In", "values": ["x"]}], "needs 'key' and 'operator'"),
    ([{"key": "a", "operator": "In", "values": "x"}], "must be a list of strings"),
    ([{"key": "a", "operator": "In", "values": ["x"], "value": 1}], "unknown field(s) value"),
])
def test_bad_match_expressions(expressions, words):
    with pytest.raises(SelectorError, match="matchExpressions\\[0\\]") as info:
        LabelSelector.from_match({}, expressions)
    assert words in str(info.value)


def test_equalities_feed_indexes():
    sel = parse_selector("env=prod,tier in (a,b),x!=y,z")
    assert sel.equalities() == {"env": frozenset({"prod"}), "tier": frozenset({"a", "b"})}

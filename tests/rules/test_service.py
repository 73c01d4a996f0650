"""RulesService on a running hub: state changes in, Commands and Events out, explain."""

from __future__ import annotations

import asyncio

import pytest

from bollydog.errors import ConfigError
from bollydog.models.service import AppService
from bollydog.rules.messages import Explain, ListRules, Sync
from bollydog.rules.patterns import RuleError
from bollydog.rules.service import RulesService
from bollydog.service.app import HubService
from bollydog.state.messages import DeleteObject, PutObject
from bollydog.state.service import StateService
from tests.rules import alerts

OVERHEATING = {
    "name": "overheating",
    "salience": 10,
    "when": [
        {"kind": "device", "as": "d", "selector": "env=prod",
         "where": ["spec.temperature > 80", "key == $device"]},
        {"not": {"kind": "alert", "where": ["spec.device == $device"]}},
    ],
    "then": {"command": "alerts.raisealert",
             "fields": {"device": "$d.key", "temperature": "$d.spec.temperature"}},
}


async def settle(condition, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _clear():
    alerts.RAISED.clear()
    alerts.NOTICED.clear()


def _hub(**rules_options) -> HubService:
    return HubService(apps=[
        StateService(domain="state"),
        RulesService(domain="rules", **{"rules": [OVERHEATING], **rules_options}),
        AppService(domain="alerts", handlers=["tests.rules.alerts"]),
    ])


async def test_a_rule_sends_a_command_once_per_match():
    async with _hub(rulesets=["tests.rules.alerts.rules"]) as hub:
        await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"temperature": 90}))
        await hub.execute(PutObject(kind="device", key="d2", labels={"env": "dev"}, spec={"temperature": 99}))
        await settle(lambda: alerts.RAISED and alerts.NOTICED)
        await hub.execute(PutObject(kind="device", key="d1", labels={"env": "prod"}, spec={"temperature": 95}))
        await asyncio.sleep(0.2)
        # The alert object now exists: the 'not' blocks the rule; d2 is not in prod.
        assert alerts.RAISED == [("d1", 90.0)]
        assert alerts.NOTICED[0] == "d1"  # the Python rule published its Event
        await hub.execute(DeleteObject(kind="alert", key="d1"))  # cleared: fires again
        await settle(lambda: len(alerts.RAISED) == 2)
        assert alerts.RAISED[1] == ("d1", 95.0)

        why = await hub.execute(Explain(rule="overheating"))
        fired = why["fired"]
        assert [f.facts[0]["version"] for f in fired] == [1, 4]
        assert fired[0].bindings == {"device": "d1"}
        assert "matched device/d1 at version 1" in fired[0].why[0]
        assert fired[0].why[1].startswith("not alert")
        listed = await hub.execute(ListRules())
        assert [r["name"] for r in listed] == ["warm", "overheating"]  # rulesets, then rules


async def test_facts_stored_before_start_fire_on_sync():
    state = StateService(domain="state")
    async with HubService(apps=[state]) as hub:
        await hub.execute(PutObject(kind="device", key="d9", labels={"env": "prod"}, spec={"temperature": 81}))
    hub = HubService(apps=[
        StateService(domain="state", protocol=state.protocol),
        RulesService(domain="rules", rules=[OVERHEATING]),
        AppService(domain="alerts", handlers=["tests.rules.alerts"]),
    ])
    async with hub:
        pending = await hub.execute(Explain())
        assert [p.facts[0]["key"] for p in pending["pending"]] == ["d9"] and not alerts.RAISED
        result = await hub.execute(Sync())
        assert result["facts"] == 1 and len(result["fired"]) == 1
        await settle(lambda: alerts.RAISED == [("d9", 81.0)])


async def test_an_unknown_message_in_an_action_is_a_start_up_error():
    bad = {**OVERHEATING, "then": {"command": "alerts.nosuch", "fields": {}}}
    hub = HubService(apps=[StateService(domain="state"), RulesService(domain="rules", rules=[bad]),
                           AppService(domain="alerts", handlers=["tests.rules.alerts"])])
    with pytest.raises(RuleError, match=r"rules\.rules\[0\]\.command: unknown message 'alerts\.nosuch'.*known:"):
        async with hub:
            pass


@pytest.mark.parametrize("rule,words", [
    ({"name": "x", "when": [], "then": {"command": "a"}}, "rules.rules[0].when: expected a list"),
    ({"name": "x", "when": [{"kind": "d", "where": ["spec.t >> 1"]}], "then": {"command": "a"}},
     "rules.rules[0].when[0]: condition 'spec.t >> 1'"),
    ({"name": "x", "when": [{"kind": "d", "where": ["spec.t > $t"]}], "then": {"command": "a"}},
     "variable $t is used in 'spec.t > $t' before a pattern binds it"),
    ({"name": "x", "when": [{"kind": "d", "selector": "env in ("}], "then": {"command": "a"}},
     "invalid label selector"),
    ({"name": "x", "when": [{"kind": "d", "size": 1}], "then": {"command": "a"}}, "unknown key(s) size"),
    ({"name": "x", "when": [{"kind": "d"}], "then": {"send": "a"}}, "rules.rules[0].then: expected"),
    ({"name": "x", "when": [{"kind": "d", "where": ["colour == red"]}], "then": {"event": "a"}},
     "path 'colour' is not kind, key, version"),
])
def test_bad_rules_in_config_are_precise_errors(rule, words):
    with pytest.raises(ConfigError) as info:
        RulesService(domain="rules", rules=[rule])
    assert words in str(info.value)

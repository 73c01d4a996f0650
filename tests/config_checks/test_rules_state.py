"""The rules service finds its StateService domain, whatever its name, and says when it cannot."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bollydog.bootstrap import build
from bollydog.errors import ConfigError
from bollydog.rules.messages import Explain
from bollydog.state.messages import PutObject

RULE = """\
    - name: overstay
      when: [{kind: car, as: c, where: ["spec.hours > 2"]}]
      then: {command: towing.tow, fields: {plate: "$c.key"}}
"""


def _config(tmp_path, state: str = "", store_key: str = "store"):
    config = tmp_path / "rules.yaml"
    config.write_text(
        f"{store_key}:\n  app: !module bollydog.state.service.StateService\n"
        "towing:\n  handlers: [tests.config_checks.towing]\n"
        f"rules:\n  app: !module bollydog.rules.service.RulesService\n{state}  rules:\n{RULE}"
    )
    return config


async def _settle(condition, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_state_domain_of_any_name_feeds_the_rules_and_a_failed_action_names_the_rule(tmp_path, caplog):
    hub = build(_config(tmp_path), entrypoints=False).hub
    caplog.set_level(logging.INFO)
    async with hub:
        assert hub.apps["rules"].state_domain == "store"
        await hub.execute(PutObject(kind="car", key="AB-123", spec={"hours": 3}))
        failed = lambda: [r for r in caplog.records if r.name == "bollydog.rules" and r.levelno == logging.WARNING]
        await _settle(failed)
        assert failed()[0].getMessage() == (
            "rule 'overstay': its action towing.tow failed on car/AB-123@1: ValueError: no tow truck for AB-123"
        )
        why = await hub.execute(Explain(rule="overstay"))
        assert [f.facts[0]["key"] for f in why["fired"]] == ["AB-123"]


async def test_a_state_option_naming_no_state_domain_is_a_start_up_error(tmp_path):
    hub = build(_config(tmp_path, state="  state: stor\n"), entrypoints=False).hub
    with pytest.raises(ConfigError, match="rules.state: 'stor' is not a StateService domain; state domains: store"):
        async with hub:
            pass


async def test_the_state_option_names_the_domain(tmp_path):
    hub = build(_config(tmp_path, state="  state: store\n"), entrypoints=False).hub
    async with hub:
        assert hub.apps["rules"].state_domain == "store"


async def test_rules_without_a_state_domain_are_a_start_up_error(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text("rules:\n  app: !module bollydog.rules.service.RulesService\n")
    hub = build(config, entrypoints=False).hub
    with pytest.raises(ConfigError, match="rules: the rules service needs a StateService domain and this hub has none"):
        async with hub:
            pass


def test_rules_explain_from_the_command_line_with_a_store_domain(tmp_path):
    from tests.rules.test_cli import bollydog

    good = bollydog("rules", "explain", f"--config={_config(tmp_path)}", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "rule overstay (salience 0): 0 match(es) now" in good.stdout
    misnamed = _config(tmp_path, state="  state: stor\n")
    bad = bollydog("rules", "explain", f"--config={misnamed}", cwd=tmp_path)
    assert bad.returncode == 2
    assert "rules.state: 'stor' is not a StateService domain; state domains: store" in bad.stderr

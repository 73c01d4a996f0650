"""Every key of a domain section means something: a misspelt one is a start-up error."""

from __future__ import annotations

import pytest

from bollydog.bootstrap import build
from bollydog.builder import ServiceBuilder
from bollydog.errors import ConfigError
from bollydog.models.service import AppService
from tests.config_checks.options_app import PlainService, TariffService


def _build(tmp_path, text: str):
    config = tmp_path / "app.yaml"
    config.write_text(text)
    return build(config, entrypoints=False), config


def test_misspelt_keys_of_a_domain_are_named_with_their_line_and_a_suggestion(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _build(tmp_path, "lots:\n  handlers: [tests.config_checks.parking]\n  handler: [x.jobs]\n"
                         "  protocl: {module: x}\n")
    message = str(caught.value)
    config = tmp_path / "app.yaml"
    assert f"{config}:3: lots.handler: unknown key (did you mean 'handlers'?)" in message
    assert f"{config}:4: lots.protocl: unknown key (did you mean 'protocol'?)" in message
    assert message.endswith("AppService takes app, handlers, unit_of_work, protocol, domain, name")


def test_a_misspelt_state_option_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r":3: store\.kindz: unknown key \(did you mean 'kinds'\?\).*StateService takes"):
        _build(tmp_path, "store:\n  app: !module bollydog.state.service.StateService\n"
                         "  kindz: {device: !module tests.config_checks.parking.Park}\n")


def test_a_misspelt_rules_option_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"rules\.stat: unknown key \(did you mean 'state'\?\).*RulesService takes .*rulesets"):
        _build(tmp_path, "state:\n  app: !module bollydog.state.service.StateService\n"
                         "rules:\n  app: !module bollydog.rules.service.RulesService\n  stat: store\n")


def test_a_section_not_run_here_is_checked_too(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("lots:\n  handlers: [tests.config_checks.parking]\nfees:\n  handlerz: [x]\n")
    with pytest.raises(ConfigError, match=r"fees\.handlerz: unknown key"):
        build(config, include=["lots"], entrypoints=False)


@pytest.mark.parametrize(("text", "line", "why"), [
    ("http:\n  port: 8000\n", 2, r"its key\(s\) port belong to an entrypoint"),
    ("htp:\n  app_: x\n", 1, r"its name looks like an entrypoint's \(http\)"),
    ("websocket: {}\n", 1, r"its name looks like an entrypoint's \(websocket\)"),
])
def test_an_entrypoint_section_without_app_is_not_an_empty_domain(tmp_path, text, line, why):
    with pytest.raises(ConfigError, match=rf"app\.yaml:{line}: \w+: a section without 'app:' is a domain, "
                                          rf"but {why}; add 'app: !module \.\.\.'"):
        _build(tmp_path, text)


def test_a_subclass_takes_its_constructor_keywords_and_those_it_passes_on(tmp_path):
    assert TariffService.accepted_options() == ["rate", "domain", "name", "handlers", "protocol", "unit_of_work"]
    assert PlainService.accepted_options() == AppService.accepted_options()
    composition, _ = _build(tmp_path, "fees:\n  app: !module tests.config_checks.options_app.TariffService\n"
                                      "  rate: 2.5\n  name: tariffs\n")
    (app,) = [a for a in composition.apps if a.domain == "fees"]
    assert (app.rate, app.name) == (2.5, "tariffs")
    with pytest.raises(ConfigError, match=r"fees\.rat: unknown key \(did you mean 'rate'\?\); TariffService takes"):
        _build(tmp_path, "fees:\n  app: !module tests.config_checks.options_app.TariffService\n  rat: 2\n")


def test_code_gets_the_same_check():
    with pytest.raises(ConfigError, match=r"shop\.colour: unknown key; AppService takes"):
        ServiceBuilder("shop").options(colour="red")
    with pytest.raises(TypeError):
        AppService(domain="shop", colour="red")  # type: ignore[call-arg]


def test_code_gets_the_same_check_of_persistence_options():
    from bollydog.adapters.memory import MemoryProtocol
    from bollydog.adapters.sqlalchemy import SqlAlchemyProtocol

    with pytest.raises(ConfigError, match=r"shop\.protocol\.colour: unknown key; MemoryProtocol takes unit_of_work"):
        ServiceBuilder("shop").protocol(MemoryProtocol, colour="red").build()
    # A protocol alone takes the options of the unit of work it makes.
    with pytest.raises(ConfigError, match=r"shop\.protocol\.echo: expected true or false"):
        ServiceBuilder("shop").protocol(SqlAlchemyProtocol, url="sqlite+aiosqlite://", echo="loud").build()


def test_the_example_config_still_builds():
    composition = build("example/config.yaml", entrypoints=False)
    assert "example" in composition.hub.apps

"""Handler modules: one domain each, and an import that fails points at the user's line."""

from __future__ import annotations

import pytest

from bollydog.bootstrap import build
from bollydog.errors import BollydogError, ConfigError
from bollydog.models.service import AppService
from bollydog.service.app import HubService


def test_a_module_listed_by_two_domains_is_refused(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("lots:\n  handlers: [tests.config_checks.parking]\n"
                      "fees:\n  handlers: [tests.config_checks.parking]\n")
    with pytest.raises(ConfigError, match="handler module 'tests.config_checks.parking' is listed by domains "
                                          "'lots' and 'fees'"):
        build(config, entrypoints=False)


def test_two_apps_in_code_sharing_a_module_are_refused():
    hub = HubService(apps=[AppService(domain="lots", handlers=["tests.config_checks.parking"])])
    with pytest.raises(ConfigError, match="listed by domains 'lots' and 'fees'"):
        hub.add_app(AppService(domain="fees", handlers=["tests.config_checks.parking"]))


def test_a_missing_handler_module_names_the_config_line(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("lots:\n  handlers:\n    - tests.config_checks.parking\n    - tests.config_checks.parkingz\n")
    with pytest.raises(BollydogError) as caught:
        build(config, entrypoints=False)
    assert str(caught.value) == (
        f"{config}:4: cannot import handler module 'tests.config_checks.parkingz': "
        "no module named 'tests.config_checks.parkingz'"
    )


def test_an_error_raised_importing_a_user_module_names_the_user_line(tmp_path, monkeypatch):
    package = tmp_path / "extra"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "h3.py").write_text(
        "from bollydog.models.base import Command\n\n\nclass Tow(Command):\n    iid: str\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "app.yaml"
    config.write_text("lots:\n  handlers: [extra.h3]\n")
    with pytest.raises(BollydogError) as caught:
        build(config, entrypoints=False)
    # The class statement of the user's file, not bollydog's check that refused it.
    assert str(caught.value).startswith(f"{package / 'h3.py'}:4: cannot import handler module 'extra.h3': "
                                        "ReservedFieldError: Tow.iid")


def test_a_missing_import_inside_a_user_module_names_that_line(tmp_path, monkeypatch):
    (tmp_path / "h4.py").write_text("x = 1\nimport nosuchlib\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BollydogError, match=r"h4\.py:2: cannot import handler module 'h4': "
                                            r"ModuleNotFoundError: No module named 'nosuchlib'"):
        build({"lots": {"handlers": ["h4"]}}, entrypoints=False)

"""A value of the wrong type, a key a part does not take, a key written twice: start-up errors
naming the file and line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bollydog.cli.main import cli

SQL = "bollydog.adapters.sqlalchemy"


def _ls(tmp_path, text: str, command: str = "ls"):
    config = tmp_path / "app.yaml"
    config.write_text(text)
    result = CliRunner().invoke(cli, [*command.split(), "--config", str(config)])
    return result, str(config)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("fleet:\n  handlers: [tests.config_checks.parking]\n  domain: [a, b]\n", 3,
     "fleet.domain: expected a string, got a list"),
    ("fleet:\n  handlers: [tests.config_checks.parking]\n  domain: 5\n", 3,
     "fleet.domain: expected a string, got an integer (5)"),
    ("fleet:\n  handlers: [tests.config_checks.parking]\n  name: 7\n", 3,
     "fleet.name: expected a string, got an integer (7)"),
    ("fleet:\n  handlers:\n    - tests.config_checks.parking\n    - 5\n", 4,
     "fleet.handlers[1]: expected a string, got an integer (5)"),
])
def test_a_domain_value_of_the_wrong_type_is_refused(tmp_path, text, line, message):
    result, config = _ls(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"{config}:{line}: {message}" in result.output


def test_a_key_a_protocol_does_not_take_is_refused(tmp_path):
    result, config = _ls(tmp_path, (
        f"fleet:\n  handlers: [tests.config_checks.parking]\n  unit_of_work:\n"
        f"    module: !module {SQL}.SqlAlchemyUnitOfWork\n    url: sqlite+aiosqlite://\n"
        f"  protocol:\n    module: !module {SQL}.SqlAlchemyProtocol\n    unit_of_wrk: 1\n"
    ))
    assert result.exit_code == 2, result.output
    assert (f"{config}:8: fleet.protocol.unit_of_wrk: unknown key (did you mean 'unit_of_work'?); "
            "SqlAlchemyProtocol takes module, unit_of_work") in result.output


def test_a_memory_protocol_takes_no_free_options(tmp_path):
    result, config = _ls(tmp_path, (
        "fleet:\n  handlers: [tests.config_checks.parking]\n"
        "  protocol: {module: !module bollydog.adapters.memory.MemoryProtocol, foo: 1}\n"
    ))
    assert result.exit_code == 2, result.output
    assert f"{config}:3: fleet.protocol.foo: unknown key; MemoryProtocol takes module, unit_of_work" in result.output


def test_a_unit_of_work_option_of_the_wrong_type_is_refused(tmp_path):
    result, config = _ls(tmp_path, (
        f"fleet:\n  handlers: [tests.config_checks.parking]\n  unit_of_work:\n"
        f"    module: !module {SQL}.SqlAlchemyUnitOfWork\n    url: sqlite+aiosqlite://\n"
        f"    create_tables: nope\n"
    ))
    assert result.exit_code == 2, result.output
    assert f"{config}:6: fleet.unit_of_work.create_tables: expected true or false (unquoted), got a string ('nope')" in result.output
    # Quoted, a boolean is text, which the class would take as true: refused too.
    quoted, config = _ls(tmp_path, (
        f"fleet:\n  handlers: [tests.config_checks.parking]\n  unit_of_work:\n"
        f"    module: !module {SQL}.SqlAlchemyUnitOfWork\n    url: sqlite+aiosqlite://\n"
        f"    create_tables: 'false'\n"
    ))
    assert quoted.exit_code == 2, quoted.output
    assert "fleet.unit_of_work.create_tables: expected true or false (unquoted), got a string ('false')" in quoted.output


def test_a_protocol_section_alone_is_checked_against_the_unit_of_work_it_makes(tmp_path):
    result, config = _ls(tmp_path, (
        f"fleet:\n  handlers: [tests.config_checks.parking]\n  protocol:\n"
        f"    module: !module {SQL}.SqlAlchemyProtocol\n    url: sqlite+aiosqlite://\n    echo: loud\n"
    ))
    assert result.exit_code == 2, result.output
    assert f"{config}:6: fleet.protocol.echo: expected true or false (unquoted), got a string ('loud')" in result.output


@pytest.mark.parametrize(("text", "line", "message"), [
    ("fleet:\n  handlers: [tests.config_checks.parking]\n"
     "web:\n  app: !module bollydog.entrypoint.http.app.HttpService\n  prot: 1\n", 5,
     "web.prot: unknown key (did you mean 'port'?); HttpService takes app, "),
    ("fleet:\n  handlers: [tests.config_checks.parking]\n"
     "web:\n  app: !module bollydog.entrypoint.http.app.HttpService\n  port: [1]\n", 5,
     "web.port: expected an integer, got a list"),
    ("fleet:\n  handlers: [tests.config_checks.parking]\n  name: fleet\n  handlers: [x.y]\n", 4,
     "fleet.handlers: duplicate key (first at line 2)"),
    ("fleet:\n  handlers: [tests.config_checks.parking]\n  app: !module tests.config_checks.nope.App\n", 3,
     "cannot resolve !module 'tests.config_checks.nope.App' at key 'fleet.app': "
     "no module named 'tests.config_checks.nope'"),
])
def test_a_section_problem_is_named_by_its_own_key_and_line(tmp_path, text, line, message):
    # An entrypoint's options by the user's key (not its class's default section), a key
    # written twice with both lines, a reference through a module that does not exist.
    result, config = _ls(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"{config}:{line}: {message}" in result.output


@pytest.mark.parametrize("command", ["ls", "graph", "docs asyncapi", "docs openapi"])
def test_a_websocket_pattern_naming_no_message_is_refused_by_every_command(tmp_path, command):
    result, _ = _ls(tmp_path, (
        "fleet:\n  handlers: [tests.config_checks.parking]\n"
        "web:\n  app: !module bollydog.entrypoint.http.app.HttpService\n"
        "ws:\n  app: !module bollydog.entrypoint.websocket.app.SocketService\n  include: [flet.*]\n"
    ), command)
    assert result.exit_code == 2, result.output
    assert ":7: ws.include: 'flet.*' matches no message" in result.output  # the section's own key and line

"""Every one-shot command takes --include/--exclude, with service's meaning; infrastructure
sections (transports, plugins) cannot be picked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bollydog.bootstrap import select
from bollydog.cli.main import cli
from bollydog.config import load_config
from bollydog.errors import ConfigError

DOMAINS = "lots:\n  handlers: [tests.cli_surface.lots_handlers]\nfees:\n  handlers: [tests.cli_surface.fees_handlers]\n"
# Never started by these tests: nothing connects to it.
DISTRIBUTE = "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n  url: redis://127.0.0.1:1/0\n"
SCHEDULER = (
    "scheduler:\n  app: !module bollydog.schedule.Scheduler\n  schedules:\n"
    "    often:\n      message: lots.ping\n      every: 900\n"
)


@pytest.fixture
def plain(tmp_path: Path) -> str:
    config = tmp_path / "plain.yaml"
    config.write_text(DOMAINS)
    return str(config)


@pytest.fixture
def split(tmp_path: Path) -> str:
    config = tmp_path / "split.yaml"
    config.write_text(DOMAINS + DISTRIBUTE + SCHEDULER)
    return str(config)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("args", [
    ["--message", "fees.quote", "--hours=2", "--exclude", "lots"],   # after a field
    ["--exclude=lots", "--message", "fees.quote", "--hours", "2"],   # before the message
    ["--message", "fees.quote", "--include", "fees", "--hours=2"],   # between fields
])
def test_execute_takes_include_and_exclude_before_the_fields(plain: str, args: list[str]) -> None:
    result = invoke("execute", "--config", plain, *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == 4


def test_execute_leaves_out_an_excluded_domain(plain: str) -> None:
    # Without a transport a domain left out is nowhere: its messages are not known here.
    result = invoke("execute", "--config", plain, "--exclude", "lots", "--message", "lots.ping")
    assert result.exit_code == 2, result.output
    assert "lots.ping" in result.output
    assert "Domain 'lots' is in the config but left out by --include/--exclude" in result.output
    assert "no transport (a distribute section)" in result.output


def test_ls_on_the_front_names_where_remote_handlers_run(split: str) -> None:
    result = invoke("ls", "--config", split, "--exclude", "lots", "--json")
    assert result.exit_code == 0, result.output
    handlers = {m["message"]: m["handlers"] for m in json.loads(result.stdout)["messages"]}
    assert handlers["lots.ping"] == ["(remote: domain lots)"]
    assert handlers["lots.parked"] == ["(remote: domain lots)"]  # an Event handled elsewhere
    here = invoke("ls", "--config", split, "--json")
    assert {m["message"]: m["handlers"] for m in json.loads(here.stdout)["messages"]}["lots.parked"] == [
        "tests.cli_surface.lots_handlers.count_parked"
    ]


def test_a_bare_flag_sets_a_boolean_field_only(plain: str) -> None:
    result = invoke("execute", "--config", plain, "--message", "lots.park", "--plates=A", "--note")
    assert result.exit_code == 2, result.output
    assert "note: needs a value (--note=...): only a boolean field is set by a bare flag" in result.output
    given = invoke("execute", "--config", plain, "--message", "lots.park", "--plates=A", "--note=ok")
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["note"] == "ok"


def test_ls_with_exclude_shows_the_schedules_run_elsewhere(split: str) -> None:
    table = invoke("ls", "--config", split, "--exclude", "lots")
    assert table.exit_code == 0, table.output
    assert "often" in table.output and "(runs where lots runs)" in table.output
    listing = json.loads(invoke("ls", "--config", split, "--include", "lots", "--json").stdout)
    assert [d["domain"] for d in listing["domains"]] == ["bollydog", "lots"]
    assert [s["runs_here"] for s in listing["schedules"]] == [True]


def test_docs_take_include_and_exclude(split: str) -> None:
    everything = invoke("docs", "asyncapi", "--config", split)
    front = invoke("docs", "asyncapi", "--config", split, "--exclude", "lots,fees")
    assert everything.exit_code == 0 and front.exit_code == 0, front.output
    assert json.loads(front.stdout)["channels"] == json.loads(everything.stdout)["channels"]
    wrong = invoke("docs", "openapi", "--config", split, "--include", "nope")
    assert wrong.exit_code == 2 and "'nope' is not in the config (known: lots, fees)" in wrong.output


@pytest.mark.parametrize("command", [["service"], ["ls"], ["graph"], ["execute", "--message", "fees.quote"],
                                     ["docs", "asyncapi"]])
@pytest.mark.parametrize("flag", ["--include", "--exclude"])
def test_an_infrastructure_section_cannot_be_picked(split: str, command: list[str], flag: str) -> None:
    for section in ("distribute", "scheduler"):
        result = invoke(*command, "--config", split, flag, section)
        assert result.exit_code == 2, result.output
        assert f"'{section}' is an infrastructure section" in result.output
        assert "runs in every process" in result.output and "pick among: lots, fees" in result.output


def test_the_known_names_leave_infrastructure_out(split: str) -> None:
    sections = load_config(Path(split))
    with pytest.raises(ConfigError, match=r"'lot' is not in the config \(known: lots, fees\)$"):
        select(sections, ["lot"], [])
    assert list(select(sections, [], ["lots"])) == ["fees", "distribute", "scheduler"]
    assert list(select(sections, ["fees"], [])) == ["fees"]

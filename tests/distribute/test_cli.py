"""`bollydog deadletters list|replay` against a real Redis."""

from __future__ import annotations

import json
import secrets

import pytest
from click.testing import CliRunner

from bollydog.cli.main import cli
from tests.distribute.conftest import redis_url_or_skip


@pytest.fixture
def setup(tmp_path):
    import redis

    url = redis_url_or_skip()
    prefix = f"bdtest:{secrets.token_hex(4)}"
    config = tmp_path / "config.yaml"
    config.write_text(
        "calc:\n  handlers: [tests.distribute.calc_handlers]\n"
        "distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n"
        f"  url: {url}\n  prefix: {prefix}\n"
    )
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client, prefix, str(config)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_list_and_replay(setup):
    client, prefix, config = setup
    stream = f"{prefix}:stream:calc:normal"
    ids = [
        client.xadd(f"{prefix}:deadletter", {
            "name": "calc.add", "payload": json.dumps({"a": i}), "dl_reason": f"invalid calc.add: b: missing {i}",
            "dl_stream": stream, "dl_entry": f"{i + 1}-0", "dl_time": "1700000000.0",
        })
        for i in range(3)
    ]
    runner = CliRunner()
    listed = runner.invoke(cli, ["deadletters", "list", "--config", config])
    assert listed.exit_code == 0, listed.output
    assert all(i in listed.output for i in ids) and "invalid calc.add: b: missing 1" in listed.output
    # The columns in the order the help gives them.
    line = next(x for x in listed.stdout.splitlines() if x.startswith(ids[1]))
    assert line.split()[2:] == ["calc.add", stream, "invalid", "calc.add:", "b:", "missing", "1"]
    usage = runner.invoke(cli, ["deadletters", "list", "--help"]).output
    assert "id, time, message name, stream, reason" in " ".join(usage.split())
    as_json = runner.invoke(cli, ["deadletters", "list", "--config", config, "--json"])
    assert [json.loads(line)["dl_id"] for line in as_json.stdout.splitlines()] == ids

    replayed = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--id", ids[1]])
    assert replayed.exit_code == 0 and "replayed 1" in replayed.output
    ((_, fields),) = client.xrange(stream)
    assert fields == {"name": "calc.add", "payload": '{"a": 1}'}  # the original entry, as it was
    assert [e[0] for e in client.xrange(f"{prefix}:deadletter")] == [ids[0], ids[2]]

    assert runner.invoke(cli, ["deadletters", "replay", "--config", config]).exit_code == 2
    missing = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--id", "9-9"])
    assert missing.exit_code == 1 and "not found among the dead letters: 9-9" in missing.output
    # The id the entry had on its stream (dl_entry, the one the worker logs) replays it too.
    by_source = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--id", "3-0"])
    assert by_source.exit_code == 0 and "replayed 1" in by_source.output, by_source.output
    assert f"its dead letter was {ids[2]}" in by_source.output
    assert [e[0] for e in client.xrange(f"{prefix}:deadletter")] == [ids[0]]
    assert client.xlen(stream) == 2
    everything = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--all"])
    assert everything.exit_code == 0 and "replayed 1" in everything.output
    assert client.xlen(f"{prefix}:deadletter") == 0 and client.xlen(stream) == 3


def test_replay_of_an_id_several_entries_had_names_the_dead_letters(setup):
    client, prefix, config = setup
    ids = [
        client.xadd(f"{prefix}:deadletter", {
            "name": "calc.add", "payload": "{}", "dl_reason": "x", "dl_stream": f"{prefix}:stream:calc:{band}",
            "dl_entry": "7-0", "dl_time": "1700000000.0",
        })
        for band in ("high", "normal")
    ]
    result = CliRunner().invoke(cli, ["deadletters", "replay", "--config", config, "--id", "7-0"])
    assert result.exit_code == 1 and "replayed 0" in result.output
    assert f"give one of the dead letter ids {ids[0]}, {ids[1]}" in result.output
    assert client.xlen(f"{prefix}:deadletter") == 2


def test_config_without_redis_transport(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("calc:\n  handlers: [tests.distribute.calc_handlers]\n")
    result = CliRunner().invoke(cli, ["deadletters", "list", "--config", str(config)])
    assert result.exit_code == 2 and "no transport with dead letters" in result.output

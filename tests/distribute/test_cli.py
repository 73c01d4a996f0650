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
            "dl_stream": stream, "dl_entry": "1-0", "dl_time": "1700000000.0",
        })
        for i in range(3)
    ]
    runner = CliRunner()
    listed = runner.invoke(cli, ["deadletters", "list", "--config", config])
    assert listed.exit_code == 0, listed.output
    assert all(i in listed.output for i in ids) and "invalid calc.add: b: missing 1" in listed.output
    as_json = runner.invoke(cli, ["deadletters", "list", "--config", config, "--json"])
    assert [json.loads(line)["dl_id"] for line in as_json.stdout.splitlines()] == ids

    replayed = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--id", ids[1]])
    assert replayed.exit_code == 0 and "replayed 1" in replayed.output
    ((_, fields),) = client.xrange(stream)
    assert fields == {"name": "calc.add", "payload": '{"a": 1}'}  # the original entry, as it was
    assert [e[0] for e in client.xrange(f"{prefix}:deadletter")] == [ids[0], ids[2]]

    assert runner.invoke(cli, ["deadletters", "replay", "--config", config]).exit_code == 2
    missing = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--id", "9-9"])
    assert missing.exit_code == 1 and "9-9" in missing.output
    everything = runner.invoke(cli, ["deadletters", "replay", "--config", config, "--all"])
    assert everything.exit_code == 0 and "replayed 2" in everything.output
    assert client.xlen(f"{prefix}:deadletter") == 0 and client.xlen(stream) == 3


def test_config_without_redis_transport(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("calc:\n  handlers: [tests.distribute.calc_handlers]\n")
    result = CliRunner().invoke(cli, ["deadletters", "list", "--config", str(config)])
    assert result.exit_code == 2 and "no transport with dead letters" in result.output

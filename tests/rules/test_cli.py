"""`bollydog rules explain` and the rules commands through `bollydog execute`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
state:
  app: !module bollydog.state.service.StateService
  unit_of_work:
    module: !module bollydog.adapters.sqlalchemy.SqlAlchemyUnitOfWork
    url: sqlite+aiosqlite:///${BOLLYDOG_CONFIG_DIR}/state.db
alerts:
  handlers: [tests.rules.alerts]
rules:
  app: !module bollydog.rules.service.RulesService
  rules:
    - name: overheating
      when:
        - {kind: device, as: d, selector: env=prod, where: ["spec.temperature > 80", "key == $device"]}
        - not: {kind: alert, where: ["spec.device == $device"]}
      then:
        command: alerts.raisealert
        fields: {device: "$d.key", temperature: "$d.spec.temperature"}
"""


def bollydog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("bollydog")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "bollydog.cli.main"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_explain_from_the_command_line(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text(CONFIG)
    cfg = f"--config={config}"
    put = bollydog("execute", cfg, "--message=state.put", "--kind=device", "--key=d1",
                   '--labels={"env": "prod"}', '--spec={"temperature": 90}', cwd=tmp_path)
    assert put.returncode == 0, put.stderr
    alerts = json.loads(bollydog("execute", cfg, "--message=state.list", "--kind=alert", cwd=tmp_path).stdout)
    assert [a["key"] for a in alerts["items"]] == ["d1"]  # the rule fired in the process that wrote

    text = bollydog("rules", "explain", cfg, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "rule overheating (salience 0): 0 match(es) now" in text.stdout
    assert "not alert: spec.device == $device\n    1 object(s) selected; 0 of 1 partial match(es) pass" in text.stdout

    # A device written by a process without the rules: it waits, and explain says so.
    plain = tmp_path / "plain.yaml"
    plain.write_text(CONFIG.split("alerts:")[0])
    bollydog("execute", f"--config={plain}", "--message=state.put", "--kind=device", "--key=d2",
             '--labels={"env": "prod"}', '--spec={"temperature": 95}', cwd=tmp_path)
    data = json.loads(bollydog("rules", "explain", cfg, "--rule=overheating", "--json", cwd=tmp_path).stdout)
    [rule] = data["rules"]
    assert [(m["facts"][0]["key"], m["pending"]) for m in rule["matches"]] == [("d2", True)]
    assert data["fired"] == []  # explain fires nothing
    synced = json.loads(bollydog("execute", cfg, "--message=rules.sync", cwd=tmp_path).stdout)
    assert len(synced["fired"]) == 1
    alerts = json.loads(bollydog("execute", cfg, "--message=state.list", "--kind=alert", cwd=tmp_path).stdout)
    assert [a["key"] for a in alerts["items"]] == ["d1", "d2"]

    unknown = bollydog("rules", "explain", cfg, "--rule=nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown rule 'nope'; known: overheating" in unknown.stderr
    missing = bollydog("rules", "explain", f"--config={plain}", cwd=tmp_path)
    assert missing.returncode == 2 and "has no RulesService domain (domains: bollydog, state)" in missing.stderr

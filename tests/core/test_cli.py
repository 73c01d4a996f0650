"""The bollydog command, run as users run it: in a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bollydog(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 30):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bollydog.cli.main", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def test_execute_from_the_repository_root_prints_json():
    done = bollydog("execute", "--config=example/config.yaml", "--message=example.handler.TaskCount")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 0


def test_execute_from_inside_example_as_in_the_seed():
    done = bollydog("execute", "--config=./config.yaml", "--message=example.handler.TaskList", cwd=ROOT / "example")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_execute_by_registered_name_with_typed_fields():
    done = bollydog(
        "execute", "--config", "example/config.yaml", "--message", "example.placeorder",
        "--customer=bob", '--lines=[{"sku": "kiwi", "quantity": 2}]',
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "rejected", "reason": "kiwi: 2 wanted, 0 left"}


def test_handler_error_goes_to_stderr_with_status_1():
    done = bollydog("execute", "--config=example/config.yaml", "--message=example.reservestock", "--sku=a", "--quantity=1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "OutOfStock" in done.stderr and "a: 1 wanted, 0 left" in done.stderr
    # Logged once, by the hub, with the trace id, as under every entrypoint.
    logged = [line for line in done.stderr.splitlines() if "[bollydog.hub]" in line]
    assert len(logged) == 1 and "example.reservestock (" in logged[0] and "failed trace_id=" in logged[0]


def test_invalid_field_names_the_field_with_status_2():
    done = bollydog("execute", "--config=example/config.yaml", "--message=example.restock", "--sku=a", "--units=many")
    assert done.returncode == 2
    assert "units" in done.stderr and "integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_and_ambiguous_messages_are_precise_errors():
    unknown = bollydog("execute", "--config=example/config.yaml", "--message=nothing.Here")
    assert unknown.returncode == 2 and "nothing.Here" in unknown.stderr
    ambiguous = bollydog("execute", "--config=example/config.yaml", "--message=taskcount")
    assert ambiguous.returncode == 2
    assert "bollydog.taskcount" in ambiguous.stderr and "example.taskcount" in ambiguous.stderr


def test_config_errors_name_the_problem(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("shop:\n  handlers: [shop.handlers]\n  db: ${SHOP_DB_URL}\n")
    done = bollydog("execute", f"--config={config}", "--message=x.Y")
    assert done.returncode == 2
    assert "SHOP_DB_URL" in done.stderr and "shop.db" in done.stderr
    missing = bollydog("execute", f"--config={tmp_path / 'nope.yaml'}", "--message=x.Y")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def test_config_less_use_with_bollydog_handlers_and_trace_ids_in_logs():
    done = bollydog(
        "execute", "--message=tests.core.logging_handlers.Loud", "--word=hey",
        env={"BOLLYDOG_HANDLERS": "tests.core.logging_handlers", "BOLLYDOG_LOG_JSON": "true"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "hey"  # stdout holds the result only
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    said = [line for line in lines if "says" in line["event"]]
    assert len(said) == 2
    assert len({line["trace_id"] for line in said}) == 1 and len(said[0]["trace_id"]) == 32
    assert all(len(line["span_id"]) == 16 for line in said)


def test_ls_lists_domains_messages_and_handlers():
    done = bollydog("ls", "--config=example/config.yaml", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert {d["domain"] for d in listing["domains"]} >= {"bollydog", "example"}
    by_name = {f"{m['domain']}.{m['name']}": m for m in listing["messages"]}
    assert by_name["example.orderplaced"]["handlers"] == [
        "example.shop.send_confirmation", "example.shop.record_sale",
    ]
    assert by_name["example.taskcount"]["kind"] == "command"


def test_service_runs_until_sigterm_and_exits_cleanly():
    process = subprocess.Popen(
        [sys.executable, "-m", "bollydog.cli.main", "service", "--config=example/config.yaml", "--include=example"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "BOLLYDOG_LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        line = ""
        while "hub started" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "hub started" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()


def test_service_rejects_unknown_include_names():
    done = bollydog("service", "--config=example/config.yaml", "--include=nope")
    assert done.returncode == 2 and "nope" in done.stderr


def test_example_tasks_persist_in_sqlite_across_processes(tmp_path):
    env = {"BOLLYDOG_EXAMPLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"}
    run = lambda *args: bollydog("execute", "--config=example/config.yaml", *args, env=env)  # noqa: E731
    assert json.loads(run("--message=todo.addtask", "--title=buy milk").stdout)["id"] == 1
    assert json.loads(run("--message=todo.addtask", "--title=walk").stdout)["id"] == 2
    assert json.loads(run("--message=todo.completetask", "--task-id=1").stdout)["done"] is True
    assert json.loads(run("--message=todo.listtasks", "--done=false").stdout) == [
        {"id": 2, "title": "walk", "done": False}
    ]
    missing = run("--message=todo.completetask", "--task-id=7")
    assert missing.returncode == 1 and "UnknownTask: no task 7" in missing.stderr
    bad_url = bollydog(
        "execute", "--config=example/config.yaml", "--message=todo.listtasks",
        env={"BOLLYDOG_EXAMPLE_DATABASE_URL": "postgresql+asyncpg://user:secret@127.0.0.1:1/none"},
    )
    assert bad_url.returncode == 2
    assert "127.0.0.1:1" in bad_url.stderr and "secret" not in bad_url.stderr


def test_console_telemetry_goes_to_stderr_and_keeps_stdout_json():
    done = bollydog(
        "execute", "--config=example/config.yaml", "--message=example.handler.TaskCount",
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 0
    assert '"name": "example.taskcount"' in done.stderr


def test_config_less_handlers_are_found_from_the_current_folder():
    # The installed console script, not `python -m` (which would put the folder on sys.path).
    script = Path(sys.executable).with_name("bollydog")
    assert script.exists(), "the bollydog console script is installed with the package"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BOLLYDOG_HANDLERS"] = "example.handler"
    done = subprocess.run(
        [str(script), "execute", "--message=example.handler.TaskCount"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 0

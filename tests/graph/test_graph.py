"""``bollydog graph``: the Mermaid flowchart parsed back into its edges and subgraphs."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bollydog.graph import sends_of
from tests.graph import flow_handlers as f

ROOT = Path(__file__).resolve().parents[2]
_NODE = re.compile(r'^\s+(?P<id>[mh]_\w+)(?:\["(?P<box>[^"]+)"\]|\{\{"(?P<hex>[^"]+)"\}\}|\("(?P<round>[^"]+)"\))$')
_EDGE = re.compile(r'^\s+(?P<a>\w+) (?:-->|-\.->)(?:\|"(?P<label>[^"]+)"\|)? (?P<b>\w+)$')
_SUB = re.compile(r'^\s+subgraph (?P<id>\w+)\["(?P<title>[^"]+)"\]$')


def parse(text: str) -> tuple[dict[str, str], set[tuple[str, str, str]], dict[str, list[str]], dict[str, str]]:
    """Node labels by id, edges as (from label, how, to label), subgraph title -> node labels,
    and the shape of each node (box: command, hexagon: event, round: handler)."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    labels: dict[str, str] = {}
    shapes: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    edges: set[tuple[str, str, str]] = set()
    current: str | None = None
    raw_edges = []
    for line in lines[1:]:
        if (m := _SUB.match(line)) is not None:
            current = m["title"]
            groups[current] = []
        elif line.strip() == "end":
            current = None
        elif (m := _NODE.match(line)) is not None:
            label = m["box"] or m["hex"] or m["round"]
            labels[m["id"]] = label
            shapes[label] = "command" if m["box"] else "event" if m["hex"] else "handler"
            assert current is not None, line
            groups[current].append(label)
        elif (m := _EDGE.match(line)) is not None:
            raw_edges.append((m["a"], m["label"] or "handled by", m["b"]))
        else:
            raise AssertionError(f"not a node, edge or subgraph line: {line!r}")
    for a, how, b in raw_edges:
        edges.add((labels[a], how, labels[b]))  # every edge joins declared nodes
    return labels, edges, groups, shapes


def graph(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "apps")])}
    run = subprocess.run([sys.executable, "-m", "bollydog", "graph", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_sends_are_read_from_the_handler_source() -> None:
    assert sends_of(f.start) == [
        (f.Step, "yields"), (f.Step, "yields (concurrent)"), (f.Other, "yields (concurrent)"), (f.Done, "publishes"),
    ]
    assert sends_of(f.step) == [(f.Noted, "publishes"), (f.Other, "hands off")]
    assert sends_of(f.other) == [(f.Later, "queues"), (f.Noted, "publishes")]
    assert sends_of(f.later) == [(f.Step, "executes")]
    assert sends_of(len) == []  # no source: nothing claimed


def test_the_example_graph_has_the_shop_flow() -> None:
    _, edges, groups, shapes = parse(graph("--config", "example/config.yaml"))
    place = "example.shop.place_order"
    assert {
        ("example.placeorder", "handled by", place),
        (place, "yields (concurrent)", "example.reservestock"),
        (place, "yields", "example.chargepayment"),
        (place, "publishes", "example.orderplaced"),
        ("example.orderplaced", "handled by", "example.shop.send_confirmation"),
        ("example.orderplaced", "handled by", "example.shop.record_sale"),
        ("todo.completetask", "handled by", "example.todo.complete_task"),
        ("example.todo.complete_task", "publishes", "todo.taskcompleted"),
        ("example.handler.task_list", "executes", "bollydog.tasklist"),
    } <= edges
    assert shapes["example.orderplaced"] == "event" and shapes["example.placeorder"] == "command"
    assert place in groups["example (runs here)"] and "todo.addtask" in groups["todo (runs here)"]
    assert "bollydog.tasklist" in groups["bollydog (built-in)"]
    # Only what a handler sends to the built-in domain is drawn, not its handlers.
    assert "bollydog.messages" not in groups["bollydog (built-in)"]


def test_the_library_graph_and_a_split_view() -> None:
    _, edges, groups, _ = parse(graph("--config", "tests/apps/library.yaml"))
    assert ("library.borrow", "handled by", "libraryapp.handlers.borrow") in edges
    assert ("libraryapp.handlers.borrow", "publishes", "library.bookborrowed") in edges
    _, split_edges, split_groups, _ = parse(graph("--config", "example/config.yaml", "--exclude", "example"))
    assert "example.shop.place_order" in split_groups["example (runs elsewhere)"]
    assert ("example.shop.place_order", "publishes", "example.orderplaced") in split_edges
    assert "todo.addtask" in split_groups["todo (runs here)"]


def test_a_bad_selection_exits_2_naming_the_known_keys() -> None:
    run = subprocess.run([sys.executable, "-m", "bollydog", "graph", "--config", "example/config.yaml", "--include", "shop"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "'shop' is not in the config (known: example, todo" in run.stderr


@pytest.mark.parametrize("module", ["tests.graph.flow_handlers"])
def test_a_handlers_module_without_config(module: str) -> None:
    env = {**os.environ, "BOLLYDOG_HANDLERS": module, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "bollydog", "graph"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    _, edges, groups, _ = parse(run.stdout)
    assert ("handlers.other", "handled by", "tests.graph.flow_handlers.other") in edges
    assert ("tests.graph.flow_handlers.step", "hands off", "handlers.other") in edges
    assert ("handlers.noted", "handled by", "tests.graph.flow_handlers.noted") in edges
    assert ("handlers.done", "handled by", "tests.graph.flow_handlers.noted") in edges


def test_the_diagram_in_docs_flow_is_what_the_command_prints() -> None:
    page = (ROOT / "docs" / "flow.md").read_text()
    shown = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert shown == graph("--config", "example/config.yaml")


async def test_traces_count_the_edges_and_add_what_only_they_show(tmp_path: Path) -> None:
    """A real run exported as OTLP JSON, the way a collector's file exporter writes it."""
    pytest.importorskip("opentelemetry.sdk")
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from bollydog.bootstrap import build
    from bollydog.telemetry import TelemetryPlugin

    hub = build({"handlers": {"handlers": ["tests.graph.flow_handlers"]}}).hub
    plugin = TelemetryPlugin(traces_exporter="memory", metrics_exporter="none", install_global=False).install(hub)
    async with hub:
        await hub.execute(f.Start())
        assert await hub.drain(5)
        spans = plugin.span_exporter.get_finished_spans()
    document = MessageToDict(encode_spans(spans))  # protobuf's JSON: ids in base64
    hexed = json.loads(json.dumps(document))
    for resource in hexed["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("spanId", "parentSpanId", "traceId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()  # OTLP JSON: hex
    for name, doc in (("b64", document), ("hex", hexed)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(doc) + "\n")
        env = {**os.environ, "BOLLYDOG_HANDLERS": "tests.graph.flow_handlers", "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-m", "bollydog", "graph", "--traces", str(path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        _, edges, _, _ = parse(run.stdout)
        start = "tests.graph.flow_handlers.start"
        # Sent from a variable: only the traces show it (a dashed arrow).
        assert (start, "seen at runtime ×1", "handlers.later") in edges, name
        assert "-.->" in run.stdout
        # Stated in the source and seen: Step(n=1), three in the list, one in the tuple.
        assert (start, "yields ×5", "handlers.step") in edges
        assert ("handlers.start", "×1", start) in edges
        assert ("tests.graph.flow_handlers.step", "hands off ×2", "handlers.other") in edges
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": []}\nnot json\n')
    run = subprocess.run([sys.executable, "-m", "bollydog", "graph", "--traces", str(bad)], cwd=ROOT,
                         env={**os.environ, "BOLLYDOG_HANDLERS": "tests.graph.flow_handlers", "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "traces line 2: not an OTLP JSON trace document" in run.stderr

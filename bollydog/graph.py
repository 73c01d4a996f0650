"""The message-flow graph: messages, their handlers, what each handler sends, per domain.

What a handler sends is read statically from its source (its AST), where it can be read:

- ``yield SomeCommand(...)`` (dispatched, its result sent back), ``yield [A(...), B(...)]`` and
  comprehensions of them (concurrent), ``yield SomeEvent(...)`` (published);
- ``return SomeCommand(...)`` (a coroutine handing off);
- ``hub.execute(X(...))``, ``put_message``, ``submit``, ``dispatch``; ``publish_nowait(E(...))``
  and ``raise_event(E(...))`` (a domain object's event, published after the commit).

A message built elsewhere and passed in a variable is not seen (the graph says what the code
shows, never guesses). :func:`observed_sends` reads what did happen from exported traces (OTLP
JSON): a span's parent span is the handler execution that sent it. :func:`to_mermaid` renders a
Mermaid flowchart, one subgraph per domain, labelled with where the domain runs.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import inspect
import json
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bollydog.errors import ConfigError
from bollydog.models.base import BaseMessage, Command, Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry

__all__ = ["Edge", "FlowGraph", "message_flow", "observed_sends", "sends_of", "to_mermaid"]

BUILTIN = "bollydog"  # the built-in domain: drawn only where a handler sends to it

#: Calls whose first argument is a message sent to the hub, and the edge they make.
_CALLS = {
    "execute": "executes", "put_message": "queues", "submit": "executes", "dispatch": "executes",
    "publish_nowait": "publishes", "raise_event": "publishes",
}


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` -> ``target`` (message names or handler qualnames), ``label`` says how."""

    source: str
    target: str
    label: str


@dataclass(slots=True)
class FlowGraph:
    """Domains (name -> where it runs), their messages and handlers, and the edges."""

    where: dict[str, str] = field(default_factory=dict)
    messages: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (domain, kind)
    handlers: dict[str, str] = field(default_factory=dict)  # qualname -> domain
    edges: list[Edge] = field(default_factory=list)
    #: How often traces showed each (handler, message) send and (message, handler) handling.
    observed: Counter[tuple[str, str]] = field(default_factory=Counter)


def sends_of(func: Any) -> list[tuple[type[BaseMessage], str]]:
    """The messages ``func``'s source visibly sends, with how (``yields``, ``yields (concurrent)``,
    ``publishes``, ``executes``, ``queues``, ``hands off``), in source order."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):  # no source (built-in, REPL): nothing to read
        return []
    namespace: Mapping[str, Any] = getattr(func, "__globals__", {})
    found: list[tuple[int, int, type[BaseMessage], str]] = []

    def message_of(node: ast.AST | None) -> type[BaseMessage] | None:
        if not isinstance(node, ast.Call):
            return None
        target = _resolve(node.func, namespace)
        if isinstance(target, type) and issubclass(target, (Command, Event)) and target not in (Command, Event):
            return target
        return None

    def add(node: ast.AST | None, how: str) -> None:
        message = message_of(node)
        if message is not None and isinstance(node, ast.expr):
            how = "publishes" if issubclass(message, Event) and how != "hands off" else how
            found.append((node.lineno, node.col_offset, message, how))

    for node in ast.walk(tree):
        if isinstance(node, ast.Yield):
            value = node.value
            if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                for element in value.elts:
                    add(element, "yields (concurrent)")
            elif isinstance(value, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
                add(value.elt, "yields (concurrent)")
            else:
                add(value, "yields")
        elif isinstance(node, ast.Return):
            add(node.value, "hands off")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CALLS:
            if node.args:
                add(node.args[0], _CALLS[node.func.attr])
    # ast.walk is breadth-first: back into source order, repeats dropped.
    found.sort(key=lambda item: (item[0], item[1]))
    return list(dict.fromkeys((message, how) for _, _, message, how in found))


def _resolve(node: ast.expr, namespace: Mapping[str, Any]) -> Any:
    """The object a ``Name`` or ``a.b.C`` expression names in the function's globals."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def observed_sends(lines: Iterable[str]) -> Counter[tuple[str, str]]:
    """Count, in OTLP JSON traces (one ``{"resourceSpans": ...}`` document a line, as the
    OpenTelemetry Collector's file exporter writes them), each handler -> message send and each
    message -> handler execution of bollydog's spans. Ids may be hex (OTLP JSON) or base64
    (protobuf's JSON mapping). Raises :class:`ConfigError` naming the first bad line."""
    spans: dict[str, tuple[str, str, str]] = {}  # span id -> (message name, handler, parent id)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            for resource in document["resourceSpans"]:
                for scope in resource.get("scopeSpans", ()):
                    for span in scope.get("spans", ()):
                        attributes = {a["key"]: a.get("value", {}).get("stringValue") for a in span.get("attributes", ())}
                        handler = attributes.get("bollydog.handler")
                        if handler:
                            parent = _span_id(span.get("parentSpanId") or "")
                            spans[_span_id(span["spanId"])] = (span["name"], handler, parent)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"traces line {number}: not an OTLP JSON trace document ({type(exc).__name__}: {exc})") from None
    seen: Counter[tuple[str, str]] = Counter()
    for name, handler, parent in spans.values():
        seen[(name, handler)] += 1
        if parent in spans:
            seen[(spans[parent][1], name)] += 1
    return seen


def _span_id(value: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]*", value) and len(value) in (0, 16, 32):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise ValueError(f"span id {value!r} is neither hex nor base64") from None


def message_flow(
    registry: "HandlerRegistry",
    where: Mapping[str, str],
    elsewhere: Mapping[str, Iterable["Handler"]] = {},
    observed: Mapping[tuple[str, str], int] = {},
) -> FlowGraph:
    """The graph of ``registry``'s messages and handlers.

    ``where`` names each domain's place (``this process``, ``another process``); ``elsewhere``
    adds the handlers of domains not run here (discovered from their modules), by domain;
    ``observed`` (from :func:`observed_sends`) counts what traces showed: the edges the source
    states get their count, the others are added as ``seen at runtime``.
    """
    graph = FlowGraph(where=dict(where), observed=Counter(observed))
    handlers: list[tuple[str, "Handler"]] = []
    for served in registry.served_commands():
        if served.handler is not None:
            handlers.append((_domain(registry, served.handler, served.message), served.handler))
    for message_type in registry.message_classes():
        if issubclass(message_type, Event):
            for handler in registry.event_handlers(message_type):
                handlers.append((_domain(registry, handler, message_type), handler))
    for domain, found in elsewhere.items():
        handlers.extend((domain, handler) for handler in found)

    def note(message_type: type[BaseMessage]) -> str:
        name = registry.name_of(message_type)
        kind = "event" if issubclass(message_type, Event) else "command"
        graph.messages.setdefault(name, (registry.domain_of(message_type), kind))
        graph.where.setdefault(registry.domain_of(message_type), "built-in" if name.startswith(f"{BUILTIN}.") else "?")
        return name

    for message_type in registry.message_classes():
        if registry.domain_of(message_type) != BUILTIN:
            note(message_type)
    seen: set[tuple[str, str]] = set()
    for domain, handler in handlers:
        if domain == BUILTIN or (handler.qualname, domain) in seen:  # built-ins: only what is sent
            continue
        seen.add((handler.qualname, domain))
        graph.handlers[handler.qualname] = domain
        for message_type in handler.message_types:
            graph.edges.append(Edge(note(message_type), handler.qualname, "handled by"))
        for sent, how in sends_of(handler.func):
            graph.edges.append(Edge(handler.qualname, note(sent), how))
    known = {(e.source, e.target) for e in graph.edges}
    for (source, target), _ in sorted(observed.items()):
        if (source, target) in known:
            continue
        if source in graph.messages and target not in graph.messages:
            graph.handlers.setdefault(target, graph.messages[source][0])
            graph.edges.append(Edge(source, target, "handled by"))
        elif source in graph.handlers or target in graph.messages:
            if target not in graph.messages:
                domain = target.partition(".")[0]
                graph.messages[target] = (domain, "command")
                graph.where.setdefault(domain, "?")
            graph.handlers.setdefault(source, graph.messages[target][0])
            graph.edges.append(Edge(source, target, "seen at runtime"))
    graph.edges = list(dict.fromkeys(graph.edges))
    return graph


def _domain(registry: "HandlerRegistry", handler: "Handler", message_type: type[BaseMessage]) -> str:
    return handler.app.domain if handler.app is not None else registry.domain_of(message_type)


def _id(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^0-9A-Za-z_]", "_", name)


def _text(label: str) -> str:
    return label.replace('"', "#quot;")


def to_mermaid(graph: FlowGraph) -> str:
    """A Mermaid ``flowchart LR``: commands as boxes, events as hexagons, handlers rounded, one
    subgraph per domain titled with where it runs."""
    lines = ["flowchart LR"]
    domains = sorted({*graph.where, *(d for d, _ in graph.messages.values()), *graph.handlers.values()})
    for domain in domains:
        lines.append(f'  subgraph {_id("d_", domain)}["{_text(domain)} ({_text(graph.where.get(domain, "?"))})"]')
        for name, (owner, kind) in sorted(graph.messages.items()):
            if owner == domain:
                node = f'{{{{"{_text(name)}"}}}}' if kind == "event" else f'["{_text(name)}"]'
                lines.append(f"    {_id('m_', name)}{node}")
        for qualname, owner in sorted(graph.handlers.items()):
            if owner == domain:
                lines.append(f'    {_id("h_", qualname)}("{_text(qualname)}")')
        lines.append("  end")
    for edge in graph.edges:
        count = graph.observed.get((edge.source, edge.target))
        seen = f" ×{count}" if count else ""
        if edge.label == "handled by":
            label = f'|"{seen.strip()}"| ' if seen else " "
            lines.append(f"  {_id('m_', edge.source)} -->{label}{_id('h_', edge.target)}")
        else:
            # Dashed: the traces show it, the source does not state it.
            arrow = "-.->" if edge.label == "seen at runtime" else "-->"
            lines.append(f'  {_id("h_", edge.source)} {arrow}|"{_text(edge.label)}{seen}"| {_id("m_", edge.target)}')
    return "\n".join(lines) + "\n"

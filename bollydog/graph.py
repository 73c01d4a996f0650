"""The message-flow graph: messages, their handlers, what each handler sends, per domain.

What a handler sends is read statically from its source (its AST), where it can be read:

- ``yield SomeCommand(...)`` (dispatched, its result sent back), ``yield [A(...), B(...)]`` and
  comprehensions of them (concurrent), ``yield SomeEvent(...)`` (published);
- ``return SomeCommand(...)`` (a coroutine handing off);
- ``hub.execute(X(...))``, ``put_message``, ``submit``, ``dispatch``; ``publish_nowait(E(...))``
  and ``raise_event(E(...))`` (a domain object's event, published after the commit).

A message built elsewhere and passed in a variable is not seen (the graph says what the code
shows, never guesses). :func:`to_mermaid` renders a Mermaid flowchart, one subgraph per domain,
labelled with where the domain runs.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bollydog.models.base import BaseMessage, Command, Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry

__all__ = ["Edge", "FlowGraph", "message_flow", "sends_of", "to_mermaid"]

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


def message_flow(
    registry: "HandlerRegistry",
    where: Mapping[str, str],
    elsewhere: Mapping[str, Iterable["Handler"]] = {},
) -> FlowGraph:
    """The graph of ``registry``'s messages and handlers.

    ``where`` names each domain's place (``this process``, ``another process``); ``elsewhere``
    adds the handlers of domains not run here (discovered from their modules), by domain.
    """
    graph = FlowGraph(where=dict(where))
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
        if edge.label == "handled by":
            lines.append(f"  {_id('m_', edge.source)} --> {_id('h_', edge.target)}")
        else:
            lines.append(f'  {_id("h_", edge.source)} -->|"{_text(edge.label)}"| {_id("m_", edge.target)}')
    return "\n".join(lines) + "\n"

"""Declaring rules: :class:`RuleSet` in Python, :func:`rule_from_config` from YAML.

In Python, an action is a function of the :class:`~bollydog.rules.patterns.Match` that returns
the Commands/Events to dispatch::

    rules = RuleSet()

    @rules.rule(Pattern("device", "env=prod", ["spec.temperature > 80"], name="d"), salience=10)
    def overheating(match: Match) -> Command:
        return RaiseAlert(device=match["d"].key)

In YAML, an action names a message and its fields; ``"$d.key"``, ``"$d.spec.temperature"`` or
``"$site"`` take values from the match (``"$d"`` alone: the whole object)::

    - name: overheating
      salience: 10
      when:
        - {kind: device, as: d, selector: env=prod, where: ["spec.temperature > 80"]}
        - not: {kind: alert, where: ["spec.device == $device"]}
      then:
        command: alerts.raise
        fields: {device: "$d.key", temperature: "$d.spec.temperature"}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bollydog.errors import UnknownMessageError
from bollydog.handlers import HandlerRegistry
from bollydog.models.base import BaseMessage, Command, Event
from bollydog.rules.patterns import Action, Element, Match, Not, Pattern, Rule, RuleError
from bollydog.state.objects import StateObject

__all__ = ["MessageTemplate", "RuleSet", "rule_from_config"]


class RuleSet:
    """Rules declared with the :meth:`rule` decorator (or :meth:`add`); give it to a
    :class:`~bollydog.rules.service.RulesService` (``rulesets: [pkg.module.rules]``)."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []

    def add(self, rule: Rule) -> Rule:
        if any(r.name == rule.name for r in self.rules):
            raise RuleError(f"rule {rule.name!r} is defined twice")
        self.rules.append(rule)
        return rule

    def rule(self, *when: Element, name: str | None = None, salience: int = 0) -> Callable[[Action], Action]:
        """Decorate the action of a rule whose ``when`` are the patterns given."""
        def decorate(action: Action) -> Action:
            self.add(Rule(name or str(getattr(action, "__name__", "rule")), when, action, salience))
            return action
        return decorate

    def __iter__(self) -> Any:
        return iter(self.rules)


@dataclass(slots=True)
class MessageTemplate:
    """A YAML action: the message ``name`` with ``fields`` filled from the match."""

    name: str
    fields: dict[str, Any]
    kind: str  # "command" or "event"
    where: str
    message: type[BaseMessage] | None = field(default=None)

    def bind(self, registry: HandlerRegistry) -> None:
        """Resolve the message name (a start-up error listing the known names if it is none)."""
        try:
            message = registry.resolve(self.name)
        except UnknownMessageError as exc:
            raise RuleError(f"{self.where}.{self.kind}: {exc}") from None
        expected = Command if self.kind == "command" else Event
        if not issubclass(message, expected):
            raise RuleError(f"{self.where}.{self.kind}: {self.name!r} is not a{'n' if self.kind == 'event' else ''} "
                            f"{expected.__name__}; use '{'event' if self.kind == 'command' else 'command'}:'")
        self.message = message

    def __call__(self, match: Match) -> BaseMessage:
        if self.message is None:
            raise RuleError(f"{self.where}: the action's message {self.name!r} was not resolved (start the app)")
        values = {key: fill(value, match, f"{self.where}.fields.{key}") for key, value in self.fields.items()}
        return self.message.from_input(values)


def fill(value: Any, match: Match, where: str) -> Any:
    """``value`` with its ``$name[.path]`` strings replaced from ``match``."""
    if isinstance(value, dict):
        return {k: fill(v, match, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, match, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    if value.startswith("$$"):
        return value[1:]  # "$$5" is the string "$5"
    head, _, rest = value[1:].partition(".")
    if head in match.facts:
        found: Any = match.facts[head]
    elif head in match.bindings:
        found = match.bindings[head]
    else:
        known = sorted([*match.facts, *match.bindings])
        raise RuleError(f"{where}: {value!r} names nothing the rule matched; known: {', '.join(known) or '(none)'}")
    for part in rest.split(".") if rest else ():
        if isinstance(found, StateObject):
            found = found.model_dump(mode="json")
        if not isinstance(found, Mapping) or part not in found:
            raise RuleError(f"{where}: {value!r} has no {part!r}")
        found = found[part]
    return found.model_dump(mode="json") if isinstance(found, StateObject) else found


def _pattern(section: Any, where: str) -> Pattern:
    if not isinstance(section, Mapping):
        raise RuleError(f"{where}: expected a mapping with 'kind' (and 'selector', 'where', 'as')")
    unknown = sorted(set(section) - {"kind", "selector", "where", "as"})
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(unknown)}; known: kind, selector, where, as")
    if "kind" not in section:
        raise RuleError(f"{where}: missing 'kind'")
    try:
        return Pattern(section["kind"], section.get("selector"), section.get("where") or (), section.get("as"))
    except RuleError as exc:
        raise RuleError(f"{where}: {exc}") from None


def rule_from_config(section: Any, where: str) -> Rule:
    """A :class:`Rule` from its YAML mapping (``name``, ``salience``, ``when``, ``then``)."""
    if not isinstance(section, Mapping):
        raise RuleError(f"{where}: expected a mapping with name, when and then")
    unknown = sorted(set(section) - {"name", "salience", "when", "then"})
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(unknown)}; known: name, salience, when, then")
    name = section.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}.name: a rule needs a name")
    when = section.get("when")
    if not isinstance(when, list) or not when:
        raise RuleError(f"{where}.when: expected a list of patterns")
    elements: list[Element] = []
    for index, item in enumerate(when):
        at = f"{where}.when[{index}]"
        if isinstance(item, Mapping) and set(item) == {"not"}:
            elements.append(Not(_pattern(item["not"], f"{at}.not")))
        else:
            elements.append(_pattern(item, at))
    salience = section.get("salience", 0)
    if not isinstance(salience, int) or isinstance(salience, bool):
        raise RuleError(f"{where}.salience: expected an integer, got {salience!r}")
    then = section.get("then")
    if not isinstance(then, Mapping) or len({"command", "event"} & set(then)) != 1:
        raise RuleError(f"{where}.then: expected {{command: <name>, fields: {{...}}}} or {{event: <name>, ...}}")
    kind = "command" if "command" in then else "event"
    extra = sorted(set(then) - {kind, "fields"})
    if extra:
        raise RuleError(f"{where}.then: unknown key(s) {', '.join(extra)}; known: {kind}, fields")
    fields = then.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise RuleError(f"{where}.then.fields: expected a mapping")
    try:
        return Rule(name, tuple(elements), MessageTemplate(str(then[kind]), dict(fields), kind, where), salience)
    except RuleError as exc:
        raise RuleError(f"{where}: {exc}") from None

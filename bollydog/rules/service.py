"""RulesService: a Rete network fed by the state service's changes; its actions are messages.

Config::

    rules:
      app: !module bollydog.rules.service.RulesService
      state: store                 # the StateService's domain (default: the hub's only one)
      rulesets: [myapp.rules.rules]  # RuleSet objects declared in Python
      rules:                       # and/or rules written here (see bollydog.rules.declare)
        - name: overheating
          when: [{kind: device, as: d, where: ["spec.temperature > 80"]}]
          then: {command: alerts.raise, fields: {device: "$d.key"}}

Each ``StateChanged`` event updates the network (stale versions, arriving late, are ignored);
then the agenda fires, highest salience first, each activation dispatching what its action
returns: Commands queued on the hub, Events published. The facts stored before the service
started are loaded at the first change it sees (or by ``rules.sync``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bollydog.builder import resolve_ref
from bollydog.errors import ConfigError
from bollydog.models.base import BaseMessage, Command, Event
from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.models.service import AppService
from bollydog.rules.declare import MessageTemplate, RuleSet, rule_from_config
from bollydog.rules.network import Activation, ReteNetwork
from bollydog.rules.patterns import Rule, RuleError
from bollydog.state.messages import ListObjects, StateChanged
from bollydog.state.objects import StateObject

__all__ = ["RulesService"]

log = logging.getLogger("bollydog.rules")

HANDLERS = ("bollydog.rules.messages", "bollydog.rules.handlers")


class RulesService(AppService):
    """Serves ``rules.explain``, ``rules.list`` and ``rules.sync``; fires rules on state changes."""

    default_handlers = HANDLERS

    def __init__(
        self,
        *,
        handlers: Iterable[str] = (),
        protocol: Protocol | None = None,
        unit_of_work: UnitOfWork | None = None,
        rules: Iterable[Any] = (),
        rulesets: Iterable[Any] = (),
        state: str | None = None,
        history: int = 1000,
        **options: Any,
    ) -> None:
        super().__init__(handlers=handlers, protocol=protocol, unit_of_work=unit_of_work, **options)
        where = self.domain
        declared: list[Rule] = []
        for index, ref in enumerate(rulesets):
            found = resolve_ref(ref, f"{where}.rulesets[{index}]") if not isinstance(ref, RuleSet) else ref
            if not isinstance(found, (RuleSet, Rule)):
                raise RuleError(f"{where}.rulesets[{index}]: {found!r} is not a RuleSet")
            declared.extend([found] if isinstance(found, Rule) else found.rules)
        if isinstance(rules, Mapping) or isinstance(rules, str):
            raise RuleError(f"{where}.rules: expected a list of rules")
        for index, item in enumerate(rules):
            declared.append(item if isinstance(item, Rule) else rule_from_config(item, f"{where}.rules[{index}]"))
        self.network = ReteNetwork(declared, history=history)
        self._state_option = state
        #: The domain of the StateService whose changes feed the network (settled at start).
        self.state_domain = state or ""
        self._seen: dict[tuple[str, str], int] = {}  # last version applied per object (deletes too)
        self._loaded = False
        self._lock = asyncio.Lock()

    async def on_start(self) -> None:
        await super().on_start()
        self.state_domain = self._find_state_domain()
        for rule in self.network.rules:
            if isinstance(rule.then, MessageTemplate):
                rule.then.bind(self.hub.registry)

    def _find_state_domain(self) -> str:
        """The hub's StateService domain (served here or, through a transport, elsewhere): the
        ``state`` option, checked, or the only one there is."""
        registry = self.hub.registry
        # A StateService domain is one whose handler modules name the state messages.
        domains = [d for d in registry.domains() if registry.names().get(f"{d}.list".lower()) is ListObjects]
        option = self._state_option
        if option is not None:
            if option not in domains:
                raise ConfigError(
                    f"{self.domain}.state: '{option}' is not a StateService domain; "
                    f"state domains: {', '.join(domains) or 'none'}"
                )
            return option
        if len(domains) == 1:
            return domains[0]
        if not domains:
            raise ConfigError(
                f"{self.domain}: the rules service needs a StateService domain and this hub has "
                "none; add one (app: !module bollydog.state.service.StateService)"
            )
        raise ConfigError(
            f"{self.domain}: several StateService domains ({', '.join(domains)}); "
            "say which one feeds the rules with 'state: <domain>'"
        )

    # -- feeding the network ------------------------------------------------------------------

    def _apply(self, obj: StateObject, deleted: bool) -> None:
        if obj.version <= self._seen.get(obj.ref, 0):
            return  # an older change arriving late
        self._seen[obj.ref] = obj.version
        if deleted:
            self.network.retract(obj.ref)
        else:
            self.network.insert(obj)

    async def _load(self) -> None:
        if self._loaded:
            return
        listing = await self.hub.execute(ListObjects())
        for item in listing["items"]:
            # From another process the listing comes as JSON.
            self._apply(StateObject.model_validate(item), deleted=False)
        self._loaded = True

    async def observe(self, event: StateChanged) -> list[Activation]:
        """Apply one change, then fire the agenda."""
        async with self._lock:
            await self._load()
            self._apply(event.object, deleted=event.type == "DELETED")
            return await self._fire()

    async def sync(self) -> list[Activation]:
        async with self._lock:
            await self._load()
            return await self._fire()

    async def explain(self, rule: str | None) -> dict[str, Any]:
        async with self._lock:
            await self._load()
            return self.network.explain(rule)

    async def _fire(self) -> list[Activation]:
        fired = []
        while (activation := self.network.pop()) is not None:
            fired.append(activation)
            rule = activation.rule
            if rule.then is None:
                continue
            objects = ", ".join(f"{f.kind}/{f.key}@{f.version}" for f in activation.match().matched)
            try:
                result = rule.then(activation.match())
                if inspect.isawaitable(result):
                    result = await result
                for message in _messages(result, rule.name):
                    if isinstance(message, Event):
                        self.hub.publish_nowait(message)
                    else:
                        # Queued: it fails later, where only this callback knows the rule.
                        message.state.add_done_callback(self._report(rule.name, objects, message))
                        await self.hub.put_message(message)
            except Exception:
                # One failing action must not keep the others from firing.
                log.exception("rule %r: its action failed on %s", rule.name, objects)
        return fired

    def _report(self, rule: str, objects: str, message: BaseMessage) -> Callable[[asyncio.Future[Any]], None]:
        def report(state: asyncio.Future[Any]) -> None:
            error = None if state.cancelled() else state.exception()
            if error is not None:
                log.warning(
                    "rule %r: its action %s failed on %s: %s: %s",
                    rule, self.hub.registry.name_of(type(message)), objects, type(error).__name__, error,
                )
        return report


def _messages(result: Any, rule: str) -> list[BaseMessage]:
    if result is None:
        return []
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    for item in items:
        if not isinstance(item, (Command, Event)):
            raise RuleError(f"rule {rule!r}: an action returns Commands or Events, got {type(item).__name__}")
    return items

"""Scheduler: dispatches Commands on an interval or a cron expression, through the hub.

Config section (a hub plugin: it runs in every process, and each process fires the schedules
of the domains it runs)::

    scheduler:
      app: !module bollydog.schedule.Scheduler
      schedules:
        restock-apples:                         # the schedule's name
          message: example.restock              # a Command, by any name the resolver reads
          every: 300                            # seconds; or
          # cron: "*/5 * * * *"                 # five fields (needs bollydog[schedule])
          # timezone: Europe/Paris              # of the cron expression (default UTC)
          fields: {sku: apple, units: 5}

In code, :func:`every` and :func:`cron` decorate a Command class; a hub built from a config
then gets a scheduler even without such a section.

Each tick puts a new message on the hub's queue, like any entrypoint's: admitted, traced, named
canonically. Across processes a tick fires once: the process that wins the transport's
:meth:`~bollydog.hub.transport.Transport.claim_once` (Redis ``SET NX PX`` on the schedule's
name and the tick time) dispatches it; the others skip it. Missed ticks (the loop was blocked,
the machine slept) are not replayed: on waking, the latest due tick fires once and the older
ones are skipped; ticks before the process started never fire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mode import Service

from bollydog.encoding import jsonable
from bollydog.errors import BollydogError, ConfigError, InvalidMessageError, UnknownMessageError
from bollydog.models.base import BaseMessage, Command
from bollydog.schedule.clock import Clock, SystemClock
from bollydog.schedule.triggers import Cron, Interval, Trigger
from bollydog.types import Entrypoint, HubPlugin, HubT

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import HandlerRegistry

__all__ = ["Declared", "Planned", "Scheduler", "cron", "declared_schedules", "every"]

log = logging.getLogger("bollydog.schedule")

C = TypeVar("C", bound=type[Command])

_ATTRIBUTE = "__bollydog_schedules__"
_OPTIONS = frozenset({"message", "every", "cron", "timezone", "fields"})
#: A claim outlives its tick by at least this long: longer than the clock skew between processes.
_MIN_CLAIM_TTL = 60.0
_MAX_SLEEP = 60.0


@dataclass(frozen=True, slots=True)
class Declared:
    """A schedule declared on a Command class by :func:`every` or :func:`cron`."""

    trigger: Trigger
    name: str | None
    fields: Mapping[str, Any]


def every(seconds: float, *, name: str | None = None, **fields: Any) -> Callable[[C], C]:
    """Dispatch the decorated Command every ``seconds`` seconds, with ``fields``."""
    return _declare(Interval(seconds), name, fields)


def cron(expression: str, *, timezone: str = "UTC", name: str | None = None, **fields: Any) -> Callable[[C], C]:
    """Dispatch the decorated Command on the cron ``expression`` (in ``timezone``)."""
    return _declare(Cron(expression, timezone), name, fields)


def _declare(trigger: Trigger, name: str | None, fields: Mapping[str, Any]) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Command)):
            raise ConfigError(f"@every/@cron decorate a Command class, not {cls!r}")
        own = cls.__dict__.get(_ATTRIBUTE, ())
        type.__setattr__(cls, _ATTRIBUTE, (*own, Declared(trigger, name, dict(fields))))
        return cls

    return decorate


def declared_schedules(message_type: type[BaseMessage]) -> tuple[Declared, ...]:
    """The schedules declared on ``message_type`` itself (not inherited)."""
    return tuple(message_type.__dict__.get(_ATTRIBUTE, ()))


@dataclass(slots=True)
class Planned:
    """One schedule, resolved against a hub: what ``bollydog ls`` lists and the loop fires."""

    name: str
    reference: str  # the message as written (canonical once resolved)
    trigger: Trigger
    fields: Mapping[str, Any]
    source: str  # "config" or the decorated class's path
    message_type: type[BaseMessage] | None = None  # None: its domain runs in another process
    domain: str = ""
    active: bool = False  # its domain runs here
    fired: int = field(default=0)  # ticks this process dispatched
    skipped: int = field(default=0)  # missed ticks not replayed

    def describe(self) -> dict[str, Any]:
        return {
            "schedule": self.name, "message": self.reference, "trigger": self.trigger.describe(),
            "fields": jsonable(dict(self.fields)), "domain": self.domain, "runs_here": self.active, "source": self.source,
        }


class Scheduler(HubPlugin, Entrypoint):
    """Fires the configured and declared schedules of the domains this process runs.

    A hub plugin (``--include/--exclude`` do not apply: every process runs one) that the hub
    starts and stops like an entrypoint: after the apps and the transport, and it stops
    ticking first when the hub stops. ``clock`` is for tests (:class:`ManualClock`).
    """

    def __init__(
        self,
        schedules: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        hub: HubT | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(f"scheduler: unknown option(s) {', '.join(sorted(options))}; known: schedules")
        super().__init__()
        if hub is not None:
            self.hub = hub
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._configured = _parse(schedules)
        self.planned: list[Planned] = []

    # -- resolving --------------------------------------------------------------------------------

    def plan(self, hub: HubT | None = None) -> list[Planned]:
        """Resolve every schedule against ``hub`` (default: the one this was added to).

        Raises :class:`ConfigError` for a message that names nothing (listing the known
        names), is not a Command, or whose ``fields`` are invalid, and for two schedules of
        one name.
        """
        if hub is not None:
            self.hub = hub
        registry = self.hub.registry
        planned: dict[str, Planned] = {}
        for name, (reference, trigger, fields) in self._configured.items():
            planned[name] = self._resolve(registry, name, reference, trigger, fields, "config")
        for served in registry.served_commands():
            canonical = registry.name_of(served.message)
            source = f"{served.message.__module__}.{served.message.__qualname__}"
            for index, declared in enumerate(declared_schedules(served.message)):
                name = declared.name or (canonical if index == 0 else f"{canonical}#{index + 1}")
                if name in planned:
                    raise ConfigError(
                        f"schedule '{name}' ({source}) is declared twice: give it another name= "
                        f"(schedules: {', '.join(planned)})"
                    )
                planned[name] = self._resolve(registry, name, canonical, declared.trigger, declared.fields, source)
        self.planned = list(planned.values())
        return self.planned

    def _resolve(
        self, registry: "HandlerRegistry", name: str, reference: str, trigger: Trigger,
        fields: Mapping[str, Any], source: str,
    ) -> Planned:
        where = f"scheduler.schedules.{name}" if source == "config" else f"schedule '{name}' ({source})"
        entry = Planned(name, reference, trigger, fields, source)
        try:
            message_type = registry.resolve(reference)
        except UnknownMessageError as exc:
            domain = reference.partition(".")[0]
            if "." in reference and domain in registry.domains() and domain not in self.hub.apps:
                entry.domain = domain  # run by another process, not loaded here: not ours to fire
                return entry
            raise ConfigError(f"{where}.message: {exc}") from None
        if not issubclass(message_type, Command):
            raise ConfigError(f"{where}.message: {registry.name_of(message_type)} is an Event; schedules dispatch Commands")
        try:
            message_type.from_input(dict(fields))
        except InvalidMessageError as exc:
            problems = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
            raise ConfigError(f"{where}.fields: {problems}") from None
        entry.message_type = message_type
        entry.reference = registry.name_of(message_type)
        entry.domain = registry.domain_of(message_type)
        entry.active = registry.command_handler(message_type) is not None and entry.domain in self.hub.apps
        return entry

    # -- running ----------------------------------------------------------------------------------

    async def on_start(self) -> None:
        if not self.planned:  # the composition root resolved them already; by hand: now
            self.plan()
        for entry in self.planned:
            if entry.active:
                log.info("schedule %s: %s %s", entry.name, entry.reference, entry.trigger.describe())

    @Service.task
    async def _ticking(self) -> None:
        entries = [e for e in self.planned if e.active]
        if not entries:
            return
        now = self.clock.time()
        due = {e.name: e.trigger.next_after(now) for e in entries}
        while not self.should_stop:
            now = self.clock.time()
            soonest = min(due.values())
            if soonest > now:
                # Woken at least once a minute: a wall clock set forward or back is noticed.
                await self.clock.sleep(min(soonest - now, _MAX_SLEEP))
                continue
            for entry in entries:
                tick = due[entry.name]
                if tick > now:
                    continue
                # Missed ticks are skipped: only the latest one due fires.
                following = entry.trigger.next_after(tick)
                while following <= now:
                    entry.skipped += 1
                    tick, following = following, entry.trigger.next_after(following)
                due[entry.name] = following
                await self._fire(entry, tick, following - tick)

    async def _fire(self, entry: Planned, tick: float, period: float) -> None:
        assert entry.message_type is not None  # active entries are resolved
        key = f"schedule:{entry.name}:{round(tick * 1000)}"
        try:
            claimed = await self.hub.transport.claim_once(key, max(_MIN_CLAIM_TTL, 2 * period))
        except Exception as exc:  # noqa: BLE001 - unreachable store: skip rather than risk a double
            log.warning("schedule %s: tick %s skipped, could not claim it: %s", entry.name, tick, exc)
            return
        if not claimed:
            log.debug("schedule %s: tick %s fired by another process", entry.name, tick)
            return
        message = entry.message_type.from_input(dict(entry.fields))
        try:
            await self.hub.put_message(message)
        except BollydogError as exc:  # queue full, hub stopping: this tick is lost, say so
            log.warning("schedule %s: tick %s not dispatched: %s", entry.name, tick, exc)
            return
        entry.fired += 1
        log.info("schedule %s fired %s (trace %s)", entry.name, entry.reference, message.trace_id)


def _parse(schedules: Mapping[str, Any] | None) -> dict[str, tuple[str, Trigger, Mapping[str, Any]]]:
    """The ``schedules`` section: name -> (message, trigger, fields); ConfigError naming the key."""
    if schedules is None:
        return {}
    if not isinstance(schedules, Mapping):
        raise ConfigError("scheduler.schedules: expected a mapping of schedule names to {message, every|cron, fields}")
    parsed: dict[str, tuple[str, Trigger, Mapping[str, Any]]] = {}
    for name, spec in schedules.items():
        where = f"scheduler.schedules.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with message and every or cron")
        unknown = sorted(set(spec) - _OPTIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}")
        message = spec.get("message")
        if not isinstance(message, str) or not message:
            raise ConfigError(f"{where}.message: required, the name of a Command (see bollydog ls)")
        if ("every" in spec) == ("cron" in spec):
            raise ConfigError(f"{where}: give exactly one of every (seconds) or cron (an expression)")
        fields = spec.get("fields") or {}
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{where}.fields: expected a mapping of field names to values")
        try:
            if "every" in spec:
                if "timezone" in spec:
                    raise ConfigError("timezone: applies to cron schedules only")
                trigger: Trigger = Interval(_seconds(spec["every"]))
            else:
                trigger = Cron(spec["cron"], str(spec.get("timezone") or "UTC"))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        parsed[str(name)] = (message, trigger, fields)
    return parsed


def _seconds(value: Any) -> Any:
    """YAML gives numbers; ``${VAR:30}`` gives text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value

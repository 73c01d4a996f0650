"""The transport port: where a message goes when no local handler serves it.

The hub runs a message locally when its handler is registered in this process. Otherwise it asks
the transport, which may deliver it to another process (Redis Streams) and bring the reply back.
The default, :class:`InProcessTransport`, knows no other process.

A transport is a ``mode`` service the hub owns: the hub binds it (:meth:`Transport.bind`) and
starts it after its apps, whose handlers the transport's consumers deliver to, and before its
entrypoints, which send through it. mode stops a service's dependencies in reverse order once the
service's own ``on_stop`` returned, so the hub's drain comes first: while it drains, replies to
its in-flight handlers' remote requests still arrive; then the transport stops, then the apps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

from mode import Service

from bollydog.errors import ConfigError, NoHandlerError
from bollydog.models.base import BaseMessage, Event

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry
    from bollydog.hub.hooks import Hooks
    from bollydog.models.service import AppService

__all__ = ["DeadLetterStore", "InProcessTransport", "Transport", "TransportHost"]


class TransportHost(Protocol):
    """What a transport uses of the hub it serves (:class:`~bollydog.service.app.HubService`).

    ``registry`` names and resolves messages; ``apps`` are the domains run here (their
    consumers are started); ``execute`` runs a delivered command, ``run_event_handlers`` one
    domain's handlers of a delivered event; ``hooks`` take the transport's reports (dead
    letters); ``accepting`` turns false when the hub stops taking work; ``shutdown_grace`` is the
    default time in-flight deliveries get on stop.
    """

    @property
    def registry(self) -> "HandlerRegistry": ...

    @property
    def apps(self) -> Mapping[str, "AppService"]: ...

    @property
    def hooks(self) -> "Hooks": ...

    @property
    def accepting(self) -> bool: ...

    @property
    def shutdown_grace(self) -> float: ...

    async def execute(self, message: BaseMessage) -> Any: ...

    async def run_event_handlers(self, event: BaseMessage, handlers: tuple["Handler", ...]) -> list[Any]: ...


class _Unbound:
    """The host of a transport that no hub adopted yet: every use says what to do."""

    def _missing(self) -> NoReturn:
        raise ConfigError(
            "this transport is not attached to a hub: pass it to HubService(transport=...) (a "
            "config section does it for you); the hub binds it when it starts"
        )

    @property
    def registry(self) -> "HandlerRegistry":
        self._missing()

    @property
    def apps(self) -> Mapping[str, "AppService"]:
        return {}

    @property
    def hooks(self) -> "Hooks":
        self._missing()

    @property
    def accepting(self) -> bool:
        return False

    @property
    def shutdown_grace(self) -> float:
        return 10.0

    async def execute(self, message: BaseMessage) -> Any:
        self._missing()

    async def run_event_handlers(self, event: BaseMessage, handlers: tuple["Handler", ...]) -> list[Any]:
        self._missing()

    def __bool__(self) -> bool:
        return False


UNBOUND: TransportHost = _Unbound()


class Transport(Service):
    """Port for delivering messages to other processes.

    The composition root calls :meth:`add_remote` for every domain of the configuration that
    this process does not run, before the hub starts. The hub then binds the transport
    (:meth:`bind`) and starts it as one of its services; from its start on, the transport
    consumes the messages of the domains this process runs (``hub.apps``), until it stops.

    :attr:`consume` False makes it a client only (``bollydog execute``, ``shell``: one-shot
    runs): it sends and takes replies, but consumes no stream and announces no consumer, so
    other processes' work never lands in it.
    """

    mundane_level = "debug"
    #: Whether starting consumes the hub's domains (see above); the composition root sets it.
    consume: bool = True

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self.remote: dict[type[BaseMessage], set[str]] = {}  # message class -> domains
        #: The hub served; a null object that says what to do until :meth:`bind`.
        self.hub: TransportHost = UNBOUND
        self._routes: dict[type[BaseMessage], tuple[str, ...]] = {}

    def bind(self, hub: TransportHost) -> None:
        """Serve ``hub``: messages delivered from now on go to it. Called by the hub before it
        starts the transport."""
        self.hub = hub

    def add_remote(self, domain: str, message_types: Iterable[type[BaseMessage]]) -> None:
        """``domain`` runs in other processes and handles ``message_types``."""
        for message_type in message_types:
            self.remote.setdefault(message_type, set()).add(domain)
        self._routes.clear()

    def domains_for(self, message_type: type[BaseMessage]) -> tuple[str, ...]:
        """The remote domains that handle ``message_type``, sorted: for a command the first one
        serves it; an event goes to each. Handlers of a base Event class see its subclasses."""
        domains = self._routes.get(message_type)
        if domains is None:
            found: set[str] = set(self.remote.get(message_type, ()))
            if issubclass(message_type, Event):
                for klass in message_type.__mro__[1:]:
                    if isinstance(klass, type) and issubclass(klass, Event):
                        found |= self.remote.get(klass, set())
            domains = self._routes[message_type] = tuple(sorted(found))
        return domains

    def serves(self, message_type: type[BaseMessage]) -> bool:
        """True when another process handles ``message_type``."""
        return bool(self.domains_for(message_type))

    async def request(self, message: BaseMessage) -> Any:
        """Deliver a Command elsewhere and return its result (or raise its error)."""
        raise NoHandlerError(
            f"no handler for {message.domain}.{message.name} "
            f"({type(message).__module__}.{type(message).__qualname__}): "
            "register one in a handlers module of a configured app"
        )

    async def publish(self, event: BaseMessage) -> None:
        """Deliver an Event to the other processes that handle it (none by default)."""

    async def probe(self) -> str | None:
        """Why the broker cannot be reached now (one line, naming it), or None when it answers.

        Asked by readiness checks and by ``bollydog service`` before it starts; a transport
        with no broker (the in-process default) has nothing to reach.
        """
        return None

    async def claim_once(self, key: str, ttl: float) -> bool:
        """True for the one process of the deployment that claims ``key`` first within ``ttl``
        seconds (what fires a scheduled tick once across processes). One process (the
        default): always True."""
        return True


class InProcessTransport(Transport):
    """One process: every message is handled here or has no handler. Starting and stopping it
    does nothing; routing asks it nothing (:meth:`serves` is False)."""

    def serves(self, message_type: type[BaseMessage]) -> bool:
        return False


@runtime_checkable
class DeadLetterStore(Protocol):
    """A transport that keeps what it gave up on (``bollydog deadletters``): each dead letter is
    the original entry's fields plus ``dl_id``, ``dl_reason``, ``dl_stream``, ``dl_time``...
    (see docs/distribute.md). Usable without starting the transport; :meth:`close` after."""

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters."""
        ...

    async def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        """Put dead letters back where they came from (all when ``ids`` is None); the ids done."""
        ...

    async def close(self) -> None:
        """Release the connections :meth:`dead_letters` and :meth:`replay` opened."""
        ...

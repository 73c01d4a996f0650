"""Abstract types: what the parts of bollydog know of each other.

Handlers, entrypoints, transports and plugins depend on these, never on the concrete
:class:`~bollydog.service.app.HubService`; only the composition root (``bollydog.bootstrap``)
names concrete classes. Annotate ``hub: HubT`` in a handler to have the hub injected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

from mode import Service

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import HandlerRegistry
    from bollydog.hub.hooks import Hooks
    from bollydog.hub.middleware import Middleware
    from bollydog.hub.transport import Transport
    from bollydog.hub.waiting import Waiting
    from bollydog.models.base import BaseMessage
    from bollydog.models.service import AppService

__all__ = ["HubT", "Entrypoint", "HubPlugin", "MetricsScrape"]


class MetricsScrape:
    """The hub's metrics in a scrape format, as a Prometheus server reads them.

    This base is the null object a hub has until an exporter provides one (the telemetry
    plugin with ``metrics_exporter: prometheus``): false, and rendering it says how to turn it
    on. Servers of ``/metrics`` (see :mod:`bollydog.entrypoint.kit.health`) ask the hub for it
    at each scrape.
    """

    #: What is missing, for whoever asks for the metrics of a hub without them.
    missing = (
        "no Prometheus exporter: set metrics_exporter: prometheus in the telemetry section "
        "(or OTEL_METRICS_EXPORTER=prometheus), see docs/telemetry.md"
    )

    def __bool__(self) -> bool:
        return False

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics now, encoded for ``accept`` (an HTTP Accept header): body, content type."""
        from bollydog.errors import ConfigError

        raise ConfigError(self.missing)


class HubT(Service):
    """Abstract type of the message hub: dispatch, admission and what it serves.

    ``registry`` names and resolves every message; ``apps`` maps each domain run here to its
    AppService. See :class:`~bollydog.service.app.HubService` for the rules.
    """

    registry: "HandlerRegistry"
    apps: Mapping[str, "AppService"]
    #: Reports outward (completions, retries, dead letters): see bollydog.hub.hooks.
    hooks: "Hooks"
    #: Waits for Events (WaitFor) and the recent-events buffer: see bollydog.hub.waiting.
    waiting: "Waiting"
    #: Where messages of domains run by other processes go (in-process: nowhere).
    transport: "Transport"
    #: The entrypoints feeding this hub (an entrypoint may look at its siblings' settings).
    entrypoints: Sequence["Entrypoint"]
    #: Seconds stopping lets in-flight work finish before cutting it.
    shutdown_grace: float
    #: Seconds a cut generator handler gets to compensate.
    compensation_grace: float
    #: The version of the handler code, bumped by each hot-reload swap (see docs/reload.md).
    code_version: int
    #: What the last hot reload did; None when the process runs without ``--reload``.
    reload_report: "dict[str, Any] | None"
    #: What ``/metrics`` serves: set by the telemetry plugin while a Prometheus reader runs.
    metrics_scrape: MetricsScrape = MetricsScrape()

    async def __aenter__(self) -> Self:
        # mode's returns its abstract ServiceT: ``async with HubService() as hub`` gives the
        # checker the hub's own type.
        await super().__aenter__()
        return self

    async def execute(self, message: "BaseMessage") -> Any:
        """Run ``message`` now and return its result (its handler's exception propagates)."""
        raise NotImplementedError

    async def put_message(self, message: "BaseMessage") -> "BaseMessage":
        """Queue ``message`` (bounded, admission-controlled) and return it; await ``.state``."""
        raise NotImplementedError

    async def submit(self, message: "BaseMessage") -> Any:
        """Run ``message`` through the admission of :meth:`put_message` and return its result
        (its handler's exception propagates): what an entrypoint calls for a request."""
        raise NotImplementedError

    async def dispatch(self, message: "BaseMessage") -> Any:
        """Route ``message`` to its local handler(s) or the transport; return the result."""
        raise NotImplementedError

    def publish_nowait(self, event: "BaseMessage") -> None:
        """Start ``event``'s handlers in the background."""
        raise NotImplementedError

    def add_middleware(self, layer: "Middleware", *, outermost: bool = True) -> None:
        """Add a dispatch layer (telemetry, auditing, ...); outermost by default."""
        raise NotImplementedError

    def force_stop(self) -> None:
        """Stop waiting: a stop in progress (or the next one) cuts in-flight work at once."""
        raise NotImplementedError

    @property
    def accepting(self) -> bool:
        """True while the hub takes new messages (started, not stopping)."""
        raise NotImplementedError

    def inflight_messages(self) -> list["BaseMessage"]:
        """Messages being handled now (queued ones excluded)."""
        raise NotImplementedError

    @property
    def queue_size(self) -> int:
        """Messages waiting in the queue."""
        raise NotImplementedError


class _NoHub(HubT):
    """The hub of a part not yet added to one (an entrypoint, an app, a plugin): false, and
    every use says what to do."""

    def __init__(
        self, owner: str = "this entrypoint", remedy: str = "add it with hub.add_entrypoint(entrypoint)"
    ) -> None:
        from bollydog.hub.hooks import Hooks
        from bollydog.hub.transport import InProcessTransport

        super().__init__()
        self.hooks = Hooks()
        self.transport = InProcessTransport()
        self._problem = f"{owner} has no hub: {remedy}"
        self.entrypoints = ()
        self.shutdown_grace = self.compensation_grace = 0.0
        self.code_version, self.reload_report = 1, None

    def _missing(self) -> NoReturn:
        from bollydog.errors import ConfigError

        raise ConfigError(self._problem)

    # Read-only here (the checker wants the attributes writable): a part without a hub has no
    # registry or apps to replace.
    @property
    def registry(self) -> "HandlerRegistry":  # type: ignore[override]
        return self._missing()

    @property
    def apps(self) -> Mapping[str, "AppService"]:  # type: ignore[override]
        return self._missing()

    async def execute(self, message: "BaseMessage") -> Any:
        return self._missing()

    async def put_message(self, message: "BaseMessage") -> "BaseMessage":
        return self._missing()

    async def submit(self, message: "BaseMessage") -> Any:
        return self._missing()

    async def dispatch(self, message: "BaseMessage") -> Any:
        return self._missing()

    def publish_nowait(self, event: "BaseMessage") -> None:
        self._missing()

    def add_middleware(self, layer: "Middleware", *, outermost: bool = True) -> None:
        self._missing()

    def force_stop(self) -> None:
        self._missing()

    @property
    def accepting(self) -> bool:
        return False

    def inflight_messages(self) -> list["BaseMessage"]:
        return []

    @property
    def queue_size(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False


class Entrypoint(Service):
    """Base of services that feed the hub from outside: HTTP, WebSocket, agent.

    Constructor keyword arguments come from the entrypoint's config section; ``hub`` is set
    when the entrypoint is added to a hub (``hub.add_entrypoint``), before it starts.
    """

    mundane_level = "debug"
    #: True when this entrypoint serves the hub's :attr:`~HubT.metrics_scrape` at ``/metrics``
    #: (the telemetry plugin then opens no Prometheus port of its own).
    serves_metrics: bool = False
    #: The pydantic model of the options (HttpSettings...): its fields are the keys a config
    #: section takes, checked with their types and lines before the entrypoint is made.
    options_model: ClassVar[type[Any] | None] = None

    def __init__(self, *, hub: HubT | None = None, **options: Any) -> None:
        super().__init__()
        self.hub: HubT = hub if hub is not None else _NoHub()
        self.options = options

    def check_names(self) -> None:
        """Refuse a setting that names no message of the hub (an ``include`` pattern...); the
        composition root calls it once every domain is registered, whatever the command."""

    def abort_inflight(self, *, forced: bool = False) -> None:
        """Called by the stopping hub once its grace period is over and its own work was cut.

        ``stop()`` is already running: it stopped taking requests and waits for the ones in
        flight. Those waiting on the hub got :class:`~bollydog.errors.HubNotRunningError`;
        answer the others now the same way (HTTP 503, WebSocket error frame) so that ``stop()``
        can return. ``forced``: a second signal; stop waiting for clients too.
        """

    def stop_accepting(self) -> None:
        """Called by the stopping hub first, before it refuses work: a server takes no new
        connection from now on and ends its idle ones (under ``--reload`` the process taking
        over gets them); requests it already read are still admitted. Default: nothing."""

    def settling(self) -> bool:
        """After :meth:`stop_accepting`: True while a connection that had no request yet is
        still read for one its client may have sent; the hub admits work until none is
        (briefly). Default: False."""
        return False

    def registry_changed(self) -> None:
        """The hub's registry was swapped by a hot reload: rebuild what was derived from it
        (routes, OpenAPI, tool lists). Default: nothing (names resolved per request)."""


class HubPlugin(Service):
    """A service that extends the hub itself (telemetry, ...), in every process.

    Its :attr:`middleware` (if not None) becomes the outermost dispatch layer. Like transports,
    plugins are infrastructure: ``--include/--exclude`` do not apply to them.
    """

    mundane_level = "debug"

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options

    @property
    def middleware(self) -> "Middleware | None":
        return None

"""SocketService: the hub's messages over a WebSocket (Starlette + uvicorn).

Config section (every option may also come from ``BOLLYDOG_WS_SERVICE_<OPTION>``; a value in the
config wins over the environment, which wins over the default)::

    websocket:
      app: !module bollydog.entrypoint.websocket.app.SocketService
      host: 127.0.0.1
      port: 8001            # 0 picks a free port; read it from ``service.port`` once started
      path: /
      include: ["example.*"]        # fnmatch on domain.name; empty = every registered message
      exclude: ["bollydog.*"]

Lifecycle: starting binds the socket and serves uvicorn in a task, through the kit's
:class:`~bollydog.entrypoint.kit.site.Site` (uvicorn's signal handling is disabled: the CLI owns
SIGINT/SIGTERM). Stopping refuses new requests, lets in-flight ones answer within the hub's
grace period (or ``shutdown_grace``, when set), answers those still running then with an error
frame, closes every socket with code 1001 (going away) and stops uvicorn. The protocol is
described in ``docs/websocket.md``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections import OrderedDict
from typing import Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from bollydog.entrypoint.kit.admission import InFlight
from bollydog.entrypoint.kit.auth import AuthError, authenticator
from bollydog.entrypoint.kit.settings import EntrypointSettings, JwtSettings, ListenerSettings, TextList
from bollydog.entrypoint.kit.site import Site
from bollydog.entrypoint.websocket.connection import Connection
from bollydog.entrypoint.websocket.protocol import encode, error_frame, topic_of
from bollydog.errors import BollydogError, ConfigError, MissingDependencyError, describe
from bollydog.hub.hooks import Completion
from bollydog.models.base import BaseMessage, Session
from bollydog.names import MessageFilter
from bollydog.types import Entrypoint, HubT

__all__ = ["SocketService", "SocketServiceError", "SocketSettings"]

log = logging.getLogger("bollydog.websocket")

#: Close code sent to every client when the service stops.
CLOSE_GOING_AWAY = 1001
#: Close code of a socket refused by authentication.
CLOSE_POLICY_VIOLATION = 1008
#: Close code of a socket refused because ``max_connections`` are open ("try again later").
CLOSE_TRY_AGAIN_LATER = 1013
#: Distinct topics whose subscribers are cached at most (topics are registered names, so this
#: is only reached by a registry of that size; the cache then starts over).
_INDEX_SIZE = 4096
#: Ids of the messages announced lately, kept while other processes' completions are watched:
#: the process that sent a command and the one that ran it both report it.
_RECENT_IDS = 4096
#: TCP connections allowed beyond ``max_connections`` (handshakes under way, sockets being
#: refused with 1013); past them a connection is answered 503 before its handshake.
_HANDSHAKE_SLACK = 64


class SocketServiceError(ConfigError):
    """The WebSocket service cannot start (no hub, ...)."""


class SocketSettings(EntrypointSettings, JwtSettings, ListenerSettings):
    """Options of :class:`SocketService`; environment variables ``BOLLYDOG_WS_SERVICE_*``. The
    JWT options are the :class:`~bollydog.entrypoint.kit.settings.JwtSettings` every entrypoint
    shares, the handshake deadline the kit's
    :class:`~bollydog.entrypoint.kit.settings.ListenerSettings`."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_WS_SERVICE_", extra="forbid")
    section: ClassVar[str] = "websocket"

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)
    path: str = "/"
    debug: bool = False
    log_level: str = "info"
    include: TextList = Field(default_factory=list)
    exclude: TextList = Field(default_factory=list)
    subscriptions: bool = True
    max_inflight: int = Field(100, ge=1, description="Concurrent requests per connection.")
    notify_queue_size: int = Field(1000, ge=1, description="Queued notifications per subscriber.")
    max_topics: int = Field(100, ge=1, description="Subscription patterns per connection.")
    max_connections: int = Field(1000, ge=1, description="Open sockets; one more is closed with 1013.")
    send_timeout: float = Field(
        10.0, gt=0, description="Seconds a frame may wait for a client that stopped reading; then it is dropped."
    )
    max_frame_size: int = Field(1 << 20, ge=1024, description="Largest accepted frame, bytes.")
    shutdown_grace: float | None = Field(None, ge=0, description="Default: the hub's shutdown_grace.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return value if value.startswith("/") else f"/{value}"

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return value.lower()


class SocketService(Entrypoint):
    """Serves registered Commands and Events over a WebSocket, with topic subscriptions.

    Options are the keys of :class:`SocketSettings`.
    """

    options_model = SocketSettings

    def __init__(self, *, hub: HubT | None = None, **options: Any) -> None:
        super().__init__(hub=hub, **options)
        self.settings = settings = SocketSettings.from_options(options)
        for package in ("starlette", "uvicorn"):
            if importlib.util.find_spec(package) is None:
                raise MissingDependencyError("the WebSocket entrypoint", "http", package)
        if importlib.util.find_spec("websockets") is None and importlib.util.find_spec("wsproto") is None:
            raise MissingDependencyError("the WebSocket entrypoint", "http", "websockets")
        self.filter = MessageFilter(settings.include, settings.exclude)
        #: The session of each socket, from its JWT when ``public_key`` is set.
        self.auth = authenticator(settings)
        self.site = Site(
            settings.host, settings.port, section="websocket", env="BOLLYDOG_WS_SERVICE_PORT",
            log_level=settings.log_level, ws_max_size=settings.max_frame_size,
            header_timeout=settings.header_timeout, max_connections=settings.max_connections + _HANDSHAKE_SLACK,
        )
        self.connections: set[Connection] = set()
        #: topic -> the connections subscribed to it, computed once per topic and kept until a
        #: subscription changes: a completed message costs a dict lookup, not a match against
        #: every pattern of every socket.
        self._subscribers: dict[str, tuple[Connection, ...]] = {}
        #: The requests in flight, on every socket: what stopping waits for and then cuts.
        self.requests = InFlight()
        self._observing = False
        #: Whether the transport's reports of other processes' completions are taken (only
        #: while some connection subscribes: a transport listens for them only then).
        self._watching = False
        self._recent: OrderedDict[str, None] = OrderedDict()

    # -- properties ----------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """True between start and stop: new requests are taken."""
        return self.requests.accepting

    @property
    def port(self) -> int:
        """The configured port until started, then the one bound (``port: 0``)."""
        return self.site.port

    @property
    def url(self) -> str:
        """``ws://host:port/path`` with the real port (after start)."""
        return self.site.url("ws", self.settings.path)

    # -- lifecycle -----------------------------------------------------------------------------

    def check_names(self) -> None:
        registry = self.hub.registry
        self.filter.check(registry.names(), "websocket", registry.unloaded_domains())

    async def on_start(self) -> None:
        if not self.hub:
            raise SocketServiceError("SocketService has no hub: add it with hub.add_entrypoint(service)")
        registry = self.hub.registry
        self.filter.check(registry.names(), "websocket", registry.unloaded_domains())
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute

        app = Starlette(debug=self.settings.debug, routes=[WebSocketRoute(self.settings.path, self._endpoint)])
        self.site.shutdown_timeout = self._grace()
        await self.site.start(app)
        if self.settings.subscriptions:
            self._install_observer()
        self.requests.open()
        log.info("WebSocket service listening on %s", self.url)

    async def on_stop(self) -> None:
        self.requests.close()  # new requests are refused from now on
        if self._observing:
            self.hub.hooks.completed.disconnect(self.notify)
            self._observing = False
        self._watch(False)
        # Requests answer when the hub finishes their messages or, past its grace period, cuts
        # them (an error frame each). Only an explicit shutdown_grace of our own cuts them
        # here, sooner or later than the hub.
        await self.requests.drain(self.settings.shutdown_grace)
        if self.connections:
            await asyncio.gather(
                *(c.close(CLOSE_GOING_AWAY, "server shutting down") for c in list(self.connections))
            )
        await self.site.stop()

    def abort_inflight(self, *, forced: bool = False) -> None:
        """Answer every request still in flight with an error frame now (grace period over)."""
        self.requests.cut()
        if forced:
            self.site.force_exit()

    def _grace(self) -> float:
        if self.settings.shutdown_grace is not None:
            return self.settings.shutdown_grace
        return self.hub.shutdown_grace

    async def _endpoint(self, websocket: Any) -> None:
        if not self.requests.accepting:
            await websocket.close(CLOSE_GOING_AWAY)
            return
        await websocket.accept()
        if len(self.connections) >= self.settings.max_connections:
            log.warning("websocket refused: %d connections open (max_connections)", len(self.connections))
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "too many connections")
            return
        try:
            session = self._authenticate(websocket)
        except BollydogError as exc:  # AuthError: tell the client why, then close
            await websocket.send_text(encode(error_frame(None, exc)))
            await websocket.close(CLOSE_POLICY_VIOLATION, "authentication failed")
            return
        connection = Connection(self, websocket, session)
        self.connections.add(connection)
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)
            if connection.topics:
                self.subscriptions_changed()

    def _authenticate(self, websocket: Any) -> Session:
        """The connection's session: from a JWT when a public key is configured (headers, or
        the ``access_token`` query parameter browsers have to use)."""
        try:
            return self.auth.session(websocket.headers, websocket.query_params.get("access_token"))
        except AuthError as exc:
            if exc.reason != "missing":
                raise
            raise AuthError(f"{exc}, or ?access_token=<token> in the URL (browsers cannot set headers)", "missing") from None

    def track(self, task: "asyncio.Task[None]", slots: asyncio.Semaphore) -> None:
        """Keep a request task until it ends (shutdown waits for it), then free its slot."""
        self.requests.add(task)

        def done(t: "asyncio.Task[None]") -> None:
            slots.release()
            if not t.cancelled() and t.exception() is not None:
                log.error("websocket request failed", exc_info=t.exception())

        task.add_done_callback(done)

    # -- subscriptions -------------------------------------------------------------------------

    def subscriptions_changed(self) -> None:
        """Forget which connections each topic reaches (a subscription was added or removed)."""
        self._subscribers.clear()
        self._watch(self._observing and any(c.topics for c in self.connections))

    def _watch(self, on: bool) -> None:
        """Take (or stop taking) the completions other processes report, through the transport."""
        if on == self._watching:
            return
        remote = self.hub.hooks.remote_completed
        if on:
            remote.connect(self.notify_remote)
        else:
            remote.disconnect(self.notify_remote)
            self._recent.clear()
        self._watching = on

    def _first_time(self, message_id: str) -> bool:
        """Whether ``message_id`` was not announced lately (remembered from now on)."""
        recent = self._recent
        if not message_id:  # nothing to recognise it by
            return True
        if message_id in recent:
            return False
        recent[message_id] = None
        if len(recent) > _RECENT_IDS:
            recent.popitem(last=False)
        return True

    def subscribers(self, topic: str) -> tuple[Connection, ...]:
        """The connections subscribed to ``topic``: matched once, then cached."""
        found = self._subscribers.get(topic)
        if found is None:
            if len(self._subscribers) >= _INDEX_SIZE:
                self._subscribers.clear()
            found = self._subscribers[topic] = tuple(
                c for c in self.connections if c.topics and c.subscribed(topic)
            )
        return found

    def notify(self, message: BaseMessage, result: Any = None, error: BaseException | None = None) -> None:
        """Announce a completed message to every connection subscribed to its topic."""
        if not self.connections:
            return
        topic = topic_of(self.hub.registry, message)
        subscribers = self.subscribers(topic)
        if not subscribers or not self.filter.allows(topic):
            return
        if self._watching and not self._first_time(message.iid):
            return
        frame: dict[str, Any] = {"type": "message", "topic": topic, "data": message, "result": result}
        if error is not None:
            failure = describe(error).body()
            frame["error"] = {"error": failure["error"], "message": failure["message"]}
        text = encode(frame)
        for connection in subscribers:
            connection.notify(text)

    def notify_remote(self, completion: Completion) -> None:
        """Announce a message another process completed (``hub.hooks.remote_completed``), as
        :meth:`notify` does one of ours; once, whichever processes report it."""
        if not self.connections:
            return
        topic = completion.topic
        subscribers = self.subscribers(topic)
        if not subscribers or not self.filter.allows(topic) or not self._first_time(completion.id):
            return
        frame: dict[str, Any] = {"type": "message", "topic": topic, "data": completion.message,
                                 "result": completion.result}
        if completion.error is not None:
            frame["error"] = completion.error
        text = encode(frame)
        for connection in subscribers:
            connection.notify(text)

    def _install_observer(self) -> None:
        """Watch every message the hub completes (commands from any entrypoint, events)."""
        if not self._observing:
            self.hub.hooks.completed.connect(self.notify)
            self._observing = True

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

Lifecycle: starting binds the socket and serves uvicorn in a task (its signal handling is
disabled: the CLI owns SIGINT/SIGTERM). Stopping refuses new requests, lets in-flight ones
answer within the hub's grace period (or ``shutdown_grace``, when set), answers those still
running then with an error frame, closes every socket with code 1001 (going away) and stops
uvicorn. The protocol is described in ``docs/websocket.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import socket
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bollydog.types import Entrypoint
from bollydog.entrypoint.websocket.connection import Connection
from bollydog.entrypoint.websocket.protocol import MessageFilter, encode, error_frame, jsonable, topic_of
from bollydog.errors import BollydogError, ConfigError, MissingDependencyError, describe
from bollydog.models.base import BaseMessage, Session

log = logging.getLogger("bollydog.websocket")

#: Close code sent to every client when the service stops.
CLOSE_GOING_AWAY = 1001
#: Close code of a socket refused by authentication.
CLOSE_POLICY_VIOLATION = 1008
#: Seconds cut requests get to send their error frame before the sockets close anyway.
_ANSWER_TIME = 1.0


class SocketServiceError(BollydogError):
    """The WebSocket service cannot start (address in use, no hub, ...)."""


class SocketSettings(BaseSettings):
    """Options of :class:`SocketService`; environment variables ``BOLLYDOG_WS_SERVICE_*``."""

    model_config = SettingsConfigDict(env_prefix="BOLLYDOG_WS_SERVICE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)
    path: str = "/"
    debug: bool = False
    log_level: str = "info"
    include: Annotated[list[str], NoDecode] = Field(default_factory=list)
    exclude: Annotated[list[str], NoDecode] = Field(default_factory=list)
    subscriptions: bool = True
    max_inflight: int = Field(100, ge=1, description="Concurrent requests per connection.")
    notify_queue_size: int = Field(1000, ge=1, description="Queued notifications per subscriber.")
    max_topics: int = Field(100, ge=1, description="Subscription patterns per connection.")
    max_frame_size: int = Field(1 << 20, ge=1024, description="Largest accepted frame, bytes.")
    shutdown_grace: float | None = Field(None, ge=0, description="Default: the hub's shutdown_grace.")
    public_key: str | None = Field(None, description="PEM text or file: enables JWT (RS256) auth.")
    auth_required: bool = Field(True, description="With a public key: refuse sockets without a token.")
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = Field(0.0, ge=0)

    @field_validator("public_key", "jwt_audience", "jwt_issuer", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("include", "exclude", "jwt_algorithms", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # "a.*,b.*" from the environment
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return value if value.startswith("/") else f"/{value}"

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return value.lower()


class SocketService(Entrypoint):
    """Serves registered Commands and Events over a WebSocket, with topic subscriptions."""

    def __init__(
        self,
        *,
        hub: Any = None,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        debug: bool | None = None,
        log_level: str | None = None,
        include: list[str] | str | None = None,
        exclude: list[str] | str | None = None,
        subscriptions: bool | None = None,
        max_inflight: int | None = None,
        notify_queue_size: int | None = None,
        max_topics: int | None = None,
        max_frame_size: int | None = None,
        shutdown_grace: float | None = None,
        public_key: str | None = None,
        auth_required: bool | None = None,
        jwt_algorithms: list[str] | str | None = None,
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        jwt_leeway: float | None = None,
    ) -> None:
        given = {
            k: v
            for k, v in dict(
                host=host, port=port, path=path, debug=debug, log_level=log_level, include=include,
                exclude=exclude, subscriptions=subscriptions, max_inflight=max_inflight,
                notify_queue_size=notify_queue_size, max_topics=max_topics, max_frame_size=max_frame_size,
                shutdown_grace=shutdown_grace, public_key=public_key, auth_required=auth_required,
                jwt_algorithms=jwt_algorithms, jwt_audience=jwt_audience, jwt_issuer=jwt_issuer,
                jwt_leeway=jwt_leeway,
            ).items()
            if v is not None
        }
        super().__init__(hub=hub, **given)
        try:
            self.settings = SocketSettings(**given)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"websocket: invalid option (config or BOLLYDOG_WS_SERVICE_*): {problems}") from None
        for package in ("starlette", "uvicorn"):
            if importlib.util.find_spec(package) is None:
                raise MissingDependencyError("the WebSocket entrypoint", "http", package)
        if importlib.util.find_spec("websockets") is None and importlib.util.find_spec("wsproto") is None:
            raise MissingDependencyError("the WebSocket entrypoint", "http", "websockets")
        self.filter = MessageFilter(self.settings.include, self.settings.exclude)
        self._public_key: Any = None
        if self.settings.public_key:
            from bollydog.entrypoint.auth import load_public_key  # needs pyjwt: bollydog[http]

            self._public_key = load_public_key(self.settings.public_key)
        self.port: int = self.settings.port
        self.connections: set[Connection] = set()
        self._requests: set[asyncio.Task] = set()
        self._accepting = False
        self._cutting = False
        self._server: Any = None
        self._serve_task: asyncio.Task | None = None
        self._observing = False

    # -- properties ----------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """True between start and stop: new requests are taken."""
        return self._accepting

    @property
    def url(self) -> str:
        """``ws://host:port/path`` with the real port (after start)."""
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"ws://{host}:{self.port}{self.settings.path}"

    # -- lifecycle -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if not self.hub:
            raise SocketServiceError("SocketService has no hub: add it with hub.add_entrypoint(service)")
        registry = self.hub.registry
        self.filter.check(registry.names(), "websocket", registry.unloaded_domains())
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import WebSocketRoute

        app = Starlette(debug=self.settings.debug, routes=[WebSocketRoute(self.settings.path, self._endpoint)])
        sock = _bind(self.settings.host, self.settings.port)
        self.port = sock.getsockname()[1]
        if self.settings.subscriptions:
            self._install_observer()
        grace = self._grace()
        config = uvicorn.Config(
            app,
            log_config=None,  # the CLI configures logging; uvicorn only gets its level
            log_level=self.settings.log_level,
            lifespan="off",
            ws_max_size=self.settings.max_frame_size,
            timeout_graceful_shutdown=max(grace, 1.0),
        )
        self._server = _server_class()(config)
        self._serve_task = asyncio.create_task(self._serve(sock), name="bollydog-ws-server")
        ready = asyncio.ensure_future(self._server.ready.wait())
        await asyncio.wait([ready, self._serve_task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            self._serve_task.result()  # raises the startup error
            raise SocketServiceError("the WebSocket server stopped while starting")
        self._cutting = False
        self._accepting = True
        log.info("WebSocket service listening on %s", self.url)

    async def on_stop(self) -> None:
        self._accepting = False
        if self._observing and self.hub is not None:
            self.hub.hooks.completed.disconnect(self.notify)
            self._observing = False
        if self._requests:
            # Requests answer when the hub finishes their messages or, past its grace period,
            # cuts them (an error frame each). Only an explicit shutdown_grace of our own cuts
            # them here, sooner or later than the hub.
            _, pending = await asyncio.wait(set(self._requests), timeout=self.settings.shutdown_grace)
            if pending:
                self.abort_inflight()
                await asyncio.wait(pending, timeout=_ANSWER_TIME)
        if self.connections:
            await asyncio.gather(
                *(c.close(CLOSE_GOING_AWAY, "server shutting down") for c in list(self.connections))
            )
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            await asyncio.gather(self._serve_task, return_exceptions=True)
            self._serve_task = None

    def abort_inflight(self, *, forced: bool = False) -> None:
        """Answer every request still in flight with an error frame now (grace period over)."""
        self._cutting = True
        for task in list(self._requests):
            task.cancel()
        if forced and self._server is not None:
            self._server.force_exit = True

    @property
    def cutting(self) -> bool:
        """True once in-flight requests are being cut: their cancellation is the shutdown's."""
        return self._cutting

    def _grace(self) -> float:
        if self.settings.shutdown_grace is not None:
            return self.settings.shutdown_grace
        return float(getattr(self.hub, "shutdown_grace", 10.0))

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits on startup failure; never let that end the process
            raise SocketServiceError(f"the WebSocket server on {self.url} failed to start; see the log") from None

    async def _endpoint(self, websocket: Any) -> None:
        if not self._accepting:
            await websocket.close(CLOSE_GOING_AWAY)
            return
        await websocket.accept()
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

    def _authenticate(self, websocket: Any) -> Session:
        """The connection's session: from a JWT when a public key is configured."""
        if self._public_key is None:
            return Session()
        from bollydog.entrypoint.auth import authenticate, session_from_claims, token_from_headers

        token = token_from_headers(websocket.headers) or websocket.query_params.get("access_token")
        claims = authenticate(
            token,
            public_key=self._public_key,
            required=self.settings.auth_required,
            algorithms=self.settings.jwt_algorithms,
            audience=self.settings.jwt_audience,
            issuer=self.settings.jwt_issuer,
            leeway=self.settings.jwt_leeway,
        )
        return session_from_claims(claims)

    def track(self, task: asyncio.Task, slots: asyncio.Semaphore) -> None:
        """Keep a request task until it ends (shutdown waits for it), then free its slot."""
        self._requests.add(task)

        def done(t: asyncio.Task) -> None:
            self._requests.discard(t)
            slots.release()
            if not t.cancelled() and t.exception() is not None:
                log.error("websocket request failed", exc_info=t.exception())

        task.add_done_callback(done)

    # -- subscriptions -------------------------------------------------------------------------

    def notify(self, message: BaseMessage, result: Any = None, error: BaseException | None = None) -> None:
        """Announce a completed message to every connection subscribed to its topic."""
        if not self.connections:
            return
        topic = topic_of(self.hub.registry, message)
        if not self.filter.allows(topic):
            return
        text: str | None = None
        for connection in list(self.connections):
            if connection.topics and connection.subscribed(topic):
                if text is None:
                    frame: dict[str, Any] = {
                        "type": "message",
                        "topic": topic,
                        "data": jsonable(message),
                        "result": jsonable(result),
                    }
                    if error is not None:
                        info = describe(error)
                        frame["error"] = {"error": info.code, "message": info.message}
                    text = encode(frame)
                connection.notify(text)

    def _install_observer(self) -> None:
        """Watch every message the hub completes (commands from any entrypoint, events)."""
        if not self._observing:
            self.hub.hooks.completed.connect(self.notify)
            self._observing = True


@functools.cache
def _server_class() -> type:
    """uvicorn's Server without signal handling, with an event set once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.ready = asyncio.Event()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # The CLI runner owns SIGINT/SIGTERM; a server must not replace its handlers.
            yield

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            self.ready.set()

    return Server


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket; a clear error instead of uvicorn's ``sys.exit`` when busy."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SocketServiceError(f"websocket host {host!r} cannot be resolved: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SocketServiceError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another 'port' "
            "(or BOLLYDOG_WS_SERVICE_PORT; 0 picks a free one)"
        ) from None
    return sock

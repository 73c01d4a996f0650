"""The route table: which Commands are served, at which paths, with which methods and limits.

Every Command registered in the hub with an app is served at
``/{app.domain}/{app.name}/{message.name}``, GET and POST (HEAD only when listed), unless the ``include``/``exclude``
patterns (fnmatch on ``domain.name``) leave it out. ``router_mapping`` entries, keyed by
``domain.name`` (fnmatch patterns allowed), change the methods and add aliases, a debounce
window or a rate limit; entries apply in order, an exact key after every pattern.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bollydog.entrypoint.http.qos import Debouncer, RateLimiter
from bollydog.entrypoint.http.settings import HttpSettings, RouteOptions
from bollydog.errors import ConfigError
from bollydog.names import MessageFilter, check_patterns, is_pattern

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry
    from bollydog.models.base import BaseMessage

log = logging.getLogger("bollydog.http")

DEFAULT_METHODS = ("GET", "POST")


@dataclass
class RouteSpec:
    """One served Command: its canonical name and path, aliases, methods and delivery controls."""

    message: type["BaseMessage"]
    handler: "Handler | None"  # None: handled in another process, reached through the transport
    key: str  # the canonical name, ``domain.name``
    path: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    aliases: list[str] = field(default_factory=list)
    debouncer: Debouncer | None = None
    limiter: RateLimiter | None = None

    @property
    def paths(self) -> list[str]:
        return [self.path, *self.aliases]


class MessageRoute(Route):
    """A Starlette route answering exactly ``methods``: Starlette adds HEAD to every GET route,
    which would run the command for a request that wants no answer. Any other method is a 405
    whose ``Allow`` lists the route's methods, in their configured order."""

    def __init__(self, path: str, endpoint: Any, *, methods: tuple[str, ...], name: str) -> None:
        super().__init__(path, endpoint, methods=list(methods), name=name)
        self.methods = self.exact = set(methods)  # `methods` is what Route.matches reads
        self.allow = ", ".join(methods)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in self.exact:
            raise HTTPException(405, headers={"Allow": self.allow})
        await self.app(scope, receive, send)


def build_routes(registry: "HandlerRegistry", settings: HttpSettings) -> list[RouteSpec]:
    """The route table for ``registry``; :class:`ConfigError` on a path served twice, or an
    ``include``/``exclude`` pattern or ``router_mapping`` key that names no message."""
    served = MessageFilter(settings.include, settings.exclude)
    known, elsewhere = registry.names(), registry.unloaded_domains()
    served.check(known, "http", elsewhere)
    check_patterns(settings.router_mapping, known, "http.router_mapping", elsewhere)
    candidates: list[RouteSpec] = []
    for served_command in registry.served_commands():
        message, location = served_command.message, served_command.location
        if location is None:
            log.debug("%s has no app: not served over HTTP", registry.name_of(message))
            continue
        domain, service = location
        candidates.append(
            RouteSpec(message, served_command.handler, registry.name_of(message), f"/{domain}/{service}/{message.name}")
        )
    specs = [spec for spec in candidates if served.allows(spec.key)]
    _apply_mapping(specs, settings.router_mapping)
    _check_unique(specs)
    return sorted(specs, key=lambda s: s.path)


def _apply_mapping(specs: list[RouteSpec], mapping: dict[str, RouteOptions]) -> None:
    # Every key names a known message (checked by build_routes); one that is known but not
    # served here (an Event, or left out by include/exclude) changes nothing.
    patterns = [(k.lower(), v) for k, v in mapping.items() if is_pattern(k)]
    exact = {k.lower(): v for k, v in mapping.items() if not is_pattern(k)}
    for spec in specs:
        key = spec.key.lower()
        for pattern, options in patterns:
            if fnmatchcase(key, pattern):
                _apply(spec, options, from_pattern=pattern)
        if key in exact:
            _apply(spec, exact[key])


def _apply(spec: RouteSpec, options: RouteOptions, from_pattern: str | None = None) -> None:
    if options.methods is not None:
        spec.methods = tuple(options.methods)
    if options.aliases:
        if from_pattern is not None:
            raise ConfigError(
                f"http.router_mapping: '{from_pattern}' is a pattern; aliases belong to one "
                "message, give them under its exact 'domain.name' key"
            )
        spec.aliases = [a.rstrip("/") or "/" for a in options.aliases]
    if options.debounce is not None:
        spec.debouncer = Debouncer(options.debounce)
    if options.rate_limit is not None:
        spec.limiter = RateLimiter(options.rate_limit)


def _check_unique(specs: list[RouteSpec]) -> None:
    seen: dict[str, RouteSpec] = {}
    documents, internal = ("/openapi.json", "/asyncapi.json"), "/_bollydog/"
    for spec in specs:
        for path in spec.paths:
            if path in documents or path.startswith(internal):
                raise ConfigError(f"http: path {path} of {spec.key} is reserved by bollydog")
            other = seen.get(path)
            if other is not None:
                raise ConfigError(
                    f"http: path {path} is served by both {other.key} "
                    f"({other.message.__module__}) and {spec.key} ({spec.message.__module__}); "
                    "rename one message or change an alias"
                )
            seen[path] = spec

"""The route table: which Commands are served, at which paths, with which methods and limits.

Every Command registered in the hub with an app is served at
``/{app.domain}/{app.name}/{message.name}``, GET and POST, unless the ``include``/``exclude``
patterns (fnmatch on ``domain.name``) leave it out. ``router_mapping`` entries, keyed by
``domain.name`` (fnmatch patterns allowed), change the methods and add aliases, a debounce
window or a rate limit; entries apply in order, an exact key after every pattern.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from bollydog.entrypoint.http.qos import Debouncer, RateLimiter
from bollydog.entrypoint.http.settings import HttpSettings, RouteOptions
from bollydog.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.handlers import Handler, HandlerRegistry
    from bollydog.models.base import BaseMessage

log = logging.getLogger("bollydog.http")

DEFAULT_METHODS = ("GET", "POST")
_PATTERN_CHARS = set("*?[")


@dataclass
class RouteSpec:
    """One served Command: its canonical path, aliases, methods and delivery controls."""

    message: type["BaseMessage"]
    handler: "Handler | None"  # None: handled in another process, reached through the transport
    path: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    aliases: list[str] = field(default_factory=list)
    debouncer: Debouncer | None = None
    limiter: RateLimiter | None = None

    @property
    def key(self) -> str:
        return f"{self.message.domain}.{self.message.name}"

    @property
    def paths(self) -> list[str]:
        return [self.path, *self.aliases]


def is_served(key: str, include: list[str], exclude: list[str]) -> bool:
    """``key`` (``domain.name``) matches an include pattern and no exclude pattern."""
    key = key.lower()
    return any(fnmatchcase(key, p.lower()) for p in include) and not any(
        fnmatchcase(key, p.lower()) for p in exclude
    )


def build_routes(registry: "HandlerRegistry", settings: HttpSettings) -> list[RouteSpec]:
    """The route table for ``registry``; :class:`ConfigError` on a path served twice or a
    ``router_mapping`` key naming no Command of a domain served here."""
    specs: list[RouteSpec] = []
    for message, handler in registry.commands.items():
        app = handler.app
        if app is None:
            log.debug("%s.%s has no app: not served over HTTP", message.domain, message.name)
            continue
        spec = RouteSpec(message, handler, f"/{app.domain}/{app.name}/{message.name}")
        if is_served(spec.key, settings.include, settings.exclude):
            specs.append(spec)
    for message, (domain, service) in registry.remote.items():
        spec = RouteSpec(message, None, f"/{domain}/{service}/{message.name}")
        if is_served(spec.key, settings.include, settings.exclude):
            specs.append(spec)
    _apply_mapping(specs, registry, settings.router_mapping)
    _check_unique(specs)
    return sorted(specs, key=lambda s: s.path)


def _apply_mapping(
    specs: list[RouteSpec], registry: "HandlerRegistry", mapping: dict[str, RouteOptions]
) -> None:
    patterns = [(k, v) for k, v in mapping.items() if _PATTERN_CHARS & set(k)]
    exact = [(k, v) for k, v in mapping.items() if not _PATTERN_CHARS & set(k)]
    by_key = {s.key.lower(): s for s in specs}
    served = [*registry.commands, *registry.remote]
    known = {f"{m.domain}.{m.name}".lower() for m in served}
    domains = {m.domain.lower() for m in served}
    for key, options in exact:
        if key.lower() in by_key:
            continue
        domain = key.rpartition(".")[0].lower()
        if key.lower() in known:
            log.info("router_mapping: %s is excluded from HTTP; its entry is ignored", key)
        elif domain in domains:
            raise ConfigError(
                f"http.router_mapping: '{key}' names no Command of domain '{domain}' "
                "(keys are 'domain.message_name', lower case)"
            )
        else:  # a domain running in another process (--include/--exclude)
            log.info("router_mapping: domain of '%s' not served by this process; ignored", key)
    for spec in specs:
        for key, options in patterns:
            if fnmatchcase(spec.key.lower(), key.lower()):
                _apply(spec, options, from_pattern=key)
        for key, options in exact:
            if spec.key.lower() == key.lower():
                _apply(spec, options)


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
    reserved = ("/openapi.json", "/_bollydog/")
    for spec in specs:
        for path in spec.paths:
            if path == reserved[0] or path.startswith(reserved[1]):
                raise ConfigError(f"http: path {path} of {spec.key} is reserved by bollydog")
            other = seen.get(path)
            if other is not None:
                raise ConfigError(
                    f"http: path {path} is served by both {other.key} "
                    f"({other.message.__module__}) and {spec.key} ({spec.message.__module__}); "
                    "rename one message or change an alias"
                )
            seen[path] = spec

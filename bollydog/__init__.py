"""bollydog: an asyncio framework of Commands, Events and one Hub behind every entrypoint.

The names users need are importable from here (``from bollydog import Command, HubService``),
loaded on first use. The seed's public paths stay: ``bollydog.models.base`` (messages),
``bollydog.models.service`` (AppService), ``bollydog.models.protocol`` (UnitOfWork, Protocol),
``bollydog.service.app`` (HubService), ``bollydog.globals`` (context-local proxies),
``bollydog.testing``. Importing bollydog has no side effects: no logging set-up, no files, no
network, no ``.env``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.errors import BollydogError, DomainError  # noqa: F401  (names of __all__, loaded lazily)
    from bollydog.models.base import BaseDomain, BaseMessage, Command, Event, Session  # noqa: F401
    from bollydog.models.protocol import Protocol, UnitOfWork  # noqa: F401
    from bollydog.models.service import AppService  # noqa: F401
    from bollydog.service.app import HubService  # noqa: F401
    from bollydog.hub.waiting import WaitFor, wait_for  # noqa: F401

#: Public name -> module defining it; imported on first access, so ``import bollydog`` is cheap.
_EXPORTS: dict[str, str] = {
    "BaseMessage": "bollydog.models.base",
    "Command": "bollydog.models.base",
    "Event": "bollydog.models.base",
    "Session": "bollydog.models.base",
    "BaseDomain": "bollydog.models.base",
    "AppService": "bollydog.models.service",
    "Protocol": "bollydog.models.protocol",
    "UnitOfWork": "bollydog.models.protocol",
    "HubService": "bollydog.service.app",
    "BollydogError": "bollydog.errors",
    "DomainError": "bollydog.errors",
    "WaitFor": "bollydog.hub.waiting",
    "wait_for": "bollydog.hub.waiting",
}

__all__ = [*_EXPORTS, "__version__"]
# Taken now: importing the submodule ``bollydog.globals`` later binds the name ``globals`` here.
_NAMESPACE = globals()


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("bollydog")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bollydog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    _NAMESPACE[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*_NAMESPACE, *__all__])

"""The seed's public import paths, the top-level API, and imports pointing inward."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_seed_paths_and_top_level_names_are_the_same_objects():
    import bollydog
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.websocket.app import SocketService
    from bollydog.globals import app, hub, message, protocol, session
    from bollydog.models.base import BaseDomain, BaseMessage, Command, Event, Session
    from bollydog.models.protocol import Protocol, UnitOfWork
    from bollydog.models.service import AppService
    from bollydog.service.app import HubService

    assert (bollydog.Command, bollydog.Event, bollydog.Session) == (Command, Event, Session)
    assert (bollydog.BaseMessage, bollydog.BaseDomain) == (BaseMessage, BaseDomain)
    assert (bollydog.AppService, bollydog.HubService) == (AppService, HubService)
    assert (bollydog.Protocol, bollydog.UnitOfWork) == (Protocol, UnitOfWork)
    from bollydog.entrypoint import auth
    from bollydog.entrypoint.kit import auth as kit_auth
    from bollydog.globals import ContextProxy
    from bollydog.types import Entrypoint

    assert all(isinstance(p, ContextProxy) for p in (app, hub, message, protocol, session))
    assert issubclass(HttpService, Entrypoint) and issubclass(SocketService, Entrypoint)
    assert auth.AuthError is kit_auth.AuthError and auth.issue_token is kit_auth.issue_token
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        bollydog.Nope  # noqa: B018


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(sorted(m for m in sys.modules if m.startswith('bollydog'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(done.stdout.strip().split(","))


def test_import_bollydog_loads_nothing_heavy():
    assert _loaded_after("import bollydog") == {"bollydog"}


@pytest.mark.parametrize(
    "module",
    ["bollydog.transport.redis", "bollydog.transport.memory", "bollydog.adapters.memory", "bollydog.adapters.sqlalchemy",
     "bollydog.adapters.file", "bollydog.telemetry", "bollydog.entrypoint.http.app",
     "bollydog.entrypoint.websocket.app", "bollydog.entrypoint.asgi", "bollydog.entrypoint.kit.health",
     "bollydog.service.app"],
)
def test_inner_parts_do_not_load_the_composition_root(module):
    loaded = _loaded_after(f"import {module}")
    assert "bollydog.bootstrap" not in loaded and "bollydog.config.loader" not in loaded, sorted(loaded)

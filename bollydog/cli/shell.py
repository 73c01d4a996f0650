"""``bollydog shell``: a ptpython REPL next to a running hub, top-level ``await`` included.

The REPL runs on the hub's own event loop, so ``await hub.execute(...)`` and the seed's
``from example.handler import TaskList, task_list; await task_list(TaskList())`` just work;
``bollydog.globals.hub`` points at the hub. In scope:

- ``hub``: the running :class:`~bollydog.service.app.HubService`;
- each app under its domain name (``example``), and all of them in ``apps``;
- every registered message class of your apps under its class name (``PlaceOrder``); a class
  name used in two domains is left out there and reachable as ``messages.<domain>.<Class>``;
- the built-in introspection commands under ``bollydog``: ``bollydog.TaskCount``,
  ``bollydog.TaskList``, ``bollydog.Messages`` (``bollydog.app`` is the built-in app);
- ``messages``: every message class as ``messages.<domain>.<Class>``.

Ctrl-D or ``exit()`` leaves the REPL; the hub is then stopped (in-flight work drains).
Input history is kept in ``~/.bollydog_history`` (``BOLLYDOG_SHELL_HISTORY``; empty disables).
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bollydog.context import current_hub, current_session
from bollydog.errors import MissingDependencyError
from bollydog.models.base import Session

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.types import HubT

#: The domain of the built-in messages, which get their own namespace in the shell.
BUILTIN_DOMAIN = "bollydog"


def run_shell(
    config: str | None, *, include: list[str], exclude: list[str],
    on_started: Callable[[HubT, Callable[[], None]], None] | None = None,
) -> None:
    """The ``bollydog shell`` command: errors are printed as the other commands print them."""
    from bollydog.cli.exits import run

    run(lambda: shell_session(config, include=include, exclude=exclude, on_started=on_started))


async def shell_session(
    config: str | None, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
    on_started: Callable[[HubT, Callable[[], None]], None] | None = None,
) -> None:
    """Build the apps of ``config``, start the hub, run the REPL until it exits, stop the hub.

    ``on_started(hub, refresh)`` runs once the hub runs; ``refresh()`` puts the registry's
    current classes into the REPL's namespace (``--reload`` calls it after a swap)."""
    embed = _load_embed()
    from bollydog.bootstrap import build

    # A client of the transport, as execute is: an interactive session never consumes other
    # processes' messages (the domains it runs are run for the REPL's own messages).
    composition = build(
        config, include=list(include), exclude=list(exclude), entrypoints=False, consumers=False
    )
    hub = composition.hub
    namespace = shell_namespace(hub)
    async with hub:
        current_hub.set(hub)  # the REPL's tasks copy this context: bollydog.globals.hub works
        current_session.set(Session.local_user())
        print(banner(hub, namespace), flush=True)
        if on_started is not None:
            on_started(hub, lambda: namespace.update(shell_namespace(hub)))
        history = os.path.expanduser(os.environ.get("BOLLYDOG_SHELL_HISTORY", "~/.bollydog_history"))
        await embed(
            globals=namespace,
            history_filename=history or None,
            title="bollydog shell",
            configure=_configure,
            return_asyncio_coroutine=True,
        )


def shell_namespace(hub: HubT) -> dict[str, Any]:
    """The REPL's globals: hub, apps by domain, message classes (see the module docstring)."""
    import builtins

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "hub": hub}
    namespace["apps"] = dict(hub.apps)
    by_domain: dict[str, types.SimpleNamespace] = {}
    user_classes: dict[str, list[type]] = {}
    for cls in hub.registry.message_classes():
        domain = hub.registry.domain_of(cls)
        by_domain.setdefault(domain, types.SimpleNamespace()).__dict__[cls.__name__] = cls
        if domain != BUILTIN_DOMAIN:
            user_classes.setdefault(cls.__name__, []).append(cls)
    for domain, app in hub.apps.items():
        if domain != BUILTIN_DOMAIN and domain.isidentifier():
            namespace[domain] = app
    namespace["messages"] = types.SimpleNamespace(**by_domain)
    builtin = by_domain.get(BUILTIN_DOMAIN, types.SimpleNamespace())
    namespace[BUILTIN_DOMAIN] = types.SimpleNamespace(app=hub.apps.get(BUILTIN_DOMAIN), **vars(builtin))
    for name, classes in user_classes.items():
        if len(classes) == 1:
            namespace.setdefault(name, classes[0])  # never hide hub, apps or a domain
    return namespace


def banner(hub: HubT, namespace: dict[str, Any]) -> str:
    classes = sorted(k for k, v in namespace.items() if isinstance(v, type) and not k.startswith("_"))
    domains = [d for d in hub.apps if d != BUILTIN_DOMAIN]
    return (
        "bollydog shell: the hub is running; top-level 'await' works.\n"
        f"  hub, apps, messages, bollydog (built-ins: {', '.join(sorted(_public(namespace[BUILTIN_DOMAIN])))})\n"
        f"  apps: {', '.join(domains) or '(none)'}\n"
        f"  messages: {', '.join(classes) or '(none)'}\n"
        "  e.g. await hub.execute(bollydog.TaskCount())   Ctrl-D or exit() to leave."
    )


def _public(namespace: types.SimpleNamespace) -> list[str]:
    return [k for k in vars(namespace) if not k.startswith("_") and k != "app"]


def _load_embed() -> Callable[..., Any]:
    try:
        from ptpython.repl import embed
    except ImportError:
        raise MissingDependencyError("the shell", "shell", "ptpython") from None
    return embed


class _Exit:
    """``exit()`` / ``quit()`` for the asyncio REPL: leave it (and stop the hub) quietly.

    ptpython's own ``exit`` raises an exception its asyncio loop prints as a traceback instead
    of leaving; a SystemExit is what that loop treats as "leave".
    """

    def __call__(self, code: Any = None) -> None:
        raise SystemExit(code)

    def __repr__(self) -> str:
        return "Use exit() or Ctrl-D (i.e. EOF) to exit"


def _configure(repl: Any) -> None:
    repl.confirm_exit = False  # Ctrl-D leaves at once, as exit() does
    add_to_namespace = getattr(repl, "_add_to_namespace", None)
    if add_to_namespace is None:  # another ptpython version: keep its own exit
        return

    def add_then_replace_exit() -> None:
        add_to_namespace()
        namespace = repl.get_globals()
        namespace["exit"] = namespace["quit"] = _Exit()

    repl._add_to_namespace = add_then_replace_exit

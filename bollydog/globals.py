"""Context-local proxies: the hub, message, session, app and protocol of the running handler.

``from bollydog.globals import hub, message`` and use them inside a handler as if they were the
objects themselves; each concurrent handler sees its own. Outside a handler they raise
``RuntimeError`` on use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bollydog.context import get_app, get_hub, get_message, get_protocol, get_session


class ContextProxy:
    """Forwards attribute access, calls, iteration and comparison to a context-local value."""

    __slots__ = ("_get", "_what")

    def __init__(self, get: Callable[[], Any], what: str) -> None:
        object.__setattr__(self, "_get", get)
        object.__setattr__(self, "_what", what)

    def _get_current_object(self) -> Any:
        value = self._get()
        if value is None:
            raise RuntimeError(f"no current {self._what}: use it inside a handler or a started hub")
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    def __eq__(self, other: Any) -> bool:
        return bool(self._get() == other)

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __bool__(self) -> bool:
        return self._get() is not None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._get_current_object())

    def __getitem__(self, key: Any) -> Any:
        return self._get_current_object()[key]

    def __repr__(self) -> str:
        value = self._get()
        return f"<proxy of current {self._what}: {value!r}>"


hub: Any = ContextProxy(get_hub, "hub")
message: Any = ContextProxy(get_message, "message")
session: Any = ContextProxy(get_session, "session")
app: Any = ContextProxy(get_app, "app")
protocol: Any = ContextProxy(get_protocol, "protocol")

__all__ = ["hub", "message", "session", "app", "protocol", "ContextProxy"]

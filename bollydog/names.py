"""Message names: the one canonical name of a message, and the one meaning of a name filter.

Every message has one canonical name, ``<domain>.<name>``: ``domain`` is the domain that serves
it (the config key of its app), ``name`` the message's lowercased class name (or its ``name``
class attribute). ``bollydog ls`` prints it; the CLI, HTTP routes and ``router_mapping``,
``include``/``exclude``, OpenAPI, WebSocket names and topics, span names and the Redis wire
format all accept and print that same string. :class:`~bollydog.handlers.HandlerRegistry`
decides it (see :meth:`~bollydog.handlers.HandlerRegistry.name_of`); this module holds what
every surface shares about names and knows nothing of handlers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from fnmatch import fnmatchcase

from bollydog.errors import ConfigError

_PATTERN_CHARS = frozenset("*?[")


def is_pattern(text: str) -> bool:
    """Whether ``text`` is an fnmatch pattern rather than one exact name."""
    return not _PATTERN_CHARS.isdisjoint(text)


def suggest(name: str, known: Iterable[str], limit: int = 3) -> str:
    """``"; did you mean a, b?"`` when some known names are close to ``name``, else ``""``.

    The same message under another domain comes first: ``pantry.store`` (a package name
    where the config key belongs) suggests ``kitchen.store``.
    """
    known = list(known)
    lowered = name.lower()
    short = lowered.rpartition(".")[2]
    same = [k for k in known if k.rpartition(".")[2] == short and k != lowered]
    close = [k for k in difflib.get_close_matches(lowered, known, n=limit, cutoff=0.6) if k not in same]
    picked = (same + close)[:limit]
    return f"; did you mean {', '.join(picked)}?" if picked else ""


def known_list(known: Iterable[str], limit: int = 30) -> str:
    """Known names for an error message, sorted, cut after ``limit``."""
    names = sorted(set(known))
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "") if names else "none"


class MessageFilter:
    """Which messages a surface exposes: fnmatch ``include`` patterns minus ``exclude``.

    Names and patterns compare case-insensitively. An empty ``include`` means every message;
    ``include`` and ``exclude`` both match canonical names (``library.borrow``, ``library.*``).
    """

    __slots__ = ("include", "exclude")

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = [p.lower() for p in include if p]
        self.exclude = [p.lower() for p in exclude if p]

    def allows(self, name: str) -> bool:
        name = name.lower()
        if self.include and not any(fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatchcase(name, p) for p in self.exclude)

    def check(self, known: Iterable[str], where: str, elsewhere: Iterable[str] = ()) -> None:
        """Raise :class:`ConfigError` for a pattern of ``where`` that matches no known name.

        A setting that names nothing real is a mistake (a package name instead of the config
        key, a typo); it is refused at start-up rather than silently serving nothing.
        """
        known = list(known)
        check_patterns(self.include, known, f"{where}.include", elsewhere)
        check_patterns(self.exclude, known, f"{where}.exclude", elsewhere)


def check_patterns(
    patterns: Iterable[str], known: Iterable[str], where: str, elsewhere: Iterable[str] = ()
) -> None:
    """Raise :class:`ConfigError` for a pattern or name in ``patterns`` matching none of ``known``.

    ``elsewhere`` are domains of the configuration whose messages this process did not load
    (run by other processes, no transport): names under them cannot be checked here.
    """
    names = [k.lower() for k in known]
    unchecked = {d.lower() for d in elsewhere}
    for pattern in patterns:
        lowered = pattern.lower()
        if lowered == "*" or any(fnmatchcase(n, lowered) for n in names):
            continue
        if lowered.partition(".")[0] in unchecked:
            continue
        raise ConfigError(
            f"{where}: '{pattern}' matches no message{suggest(pattern, names)} "
            f"(names are 'domain.message' with domain the config key; known: {known_list(names)})"
        )

"""Delivery controls of the HTTP entrypoint: fire-and-forget outcomes, debounce, rate limits.

* :class:`OutcomeStore` keeps the last ``max_size`` fire-and-forget (``qos=0``) messages so
  ``GET /_bollydog/messages/{iid}`` can report their outcome later (LRU, bounded memory).
* :class:`Debouncer` lets identical requests (same route, same fields, same user) arriving
  within a window share the execution started by the first one.
* :class:`RateLimiter` is a token bucket per (route, client): ``"10/s"`` allows bursts of 10
  and refills 10 tokens a second.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from bollydog.errors import BollydogError, ConfigError, describe
from bollydog.models.base import BaseMessage

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")


class RateLimitedError(BollydogError):
    """A client exceeded a route's ``rate_limit``; ``retry_after`` is in seconds."""

    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/s"`` -> (10, 1.0); also ``"100/m"``, ``"5/10s"``, ``"1000/hour"``."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _PERIODS or int(match.group(1)) < 1:
        raise ConfigError(
            f"rate_limit '{text}': expected 'N/s', 'N/m' or 'N/h' (N >= 1), e.g. '10/s'"
        )
    count, multiple, unit = match.groups()
    period = (float(multiple) if multiple else 1.0) * _PERIODS[unit]
    if period <= 0:
        raise ConfigError(f"rate_limit '{text}': the period must be positive")
    return int(count), period


class RateLimiter:
    """Token buckets per key; :meth:`check` raises :class:`RateLimitedError` when empty."""

    def __init__(self, rate: str, *, max_clients: int = 10_000) -> None:
        self.rate_text = rate
        self.capacity, self.period = parse_rate(rate)
        self.refill = self.capacity / self.period  # tokens per second
        self.max_clients = max_clients
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, updated)

    def check(self, key: Hashable, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(key, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - updated) * self.refill)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            retry_after = (1.0 - tokens) / self.refill
            raise RateLimitedError(f"rate limit {self.rate_text} exceeded; retry later", retry_after)
        if key not in self._buckets and len(self._buckets) >= self.max_clients:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        # Buckets that have refilled completely carry no information: forget them.
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * self.refill >= self.capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self.max_clients:  # still full: drop the oldest entries
            del self._buckets[next(iter(self._buckets))]


class Debouncer:
    """Identical requests within ``window`` seconds of the first share its message."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._runs: dict[Hashable, tuple[float, BaseMessage]] = {}

    def join(self, key: Hashable, now: float | None = None) -> BaseMessage | None:
        """The message of a run started within the window for ``key``, if any."""
        now = time.monotonic() if now is None else now
        entry = self._runs.get(key)
        if entry is None:
            return None
        if now - entry[0] > self.window:
            del self._runs[key]
            return None
        return entry[1]

    def start(self, key: Hashable, message: BaseMessage, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._runs) > 1024:
            expired = [k for k, (t, _) in self._runs.items() if now - t > self.window]
            for k in expired:
                del self._runs[k]
        self._runs[key] = (now, message)


class OutcomeStore:
    """The last ``max_size`` fire-and-forget messages, by iid (least recently used dropped)."""

    def __init__(self, max_size: int = 1024) -> None:
        self.max_size = max_size
        self._messages: OrderedDict[str, BaseMessage] = OrderedDict()

    def add(self, message: BaseMessage) -> None:
        self._messages[message.iid] = message
        self._messages.move_to_end(message.iid)
        while len(self._messages) > self.max_size:
            self._messages.popitem(last=False)

    def get(self, iid: str) -> BaseMessage | None:
        message = self._messages.get(iid)
        if message is not None:
            self._messages.move_to_end(iid)
        return message

    def __len__(self) -> int:
        return len(self._messages)


def describe_outcome(message: BaseMessage, *, debug: bool = False) -> dict[str, Any]:
    """``{"iid", "trace_id", "status": pending|done|failed, "result" | "error"+"message"}``."""
    body: dict[str, Any] = {
        "iid": message.iid,
        "trace_id": message.trace_id,
        "domain": message.domain,
        "name": message.name,
    }
    if not message.has_outcome():  # not touching ``state`` while pending: no future left unobserved
        body["status"] = "pending"
        return body
    future = message.state
    error = future.exception()
    if error is None:
        body["status"], body["result"] = "done", future.result()
    else:
        failure = describe(error).body()
        body["status"], body["error"], body["message"] = "failed", failure["error"], failure["message"]
    return body


"""Rate limiter, debouncer and rate parsing, without a server."""

import pytest

from bollydog.entrypoint.http.qos import Debouncer, RateLimitedError, RateLimiter, parse_rate
from bollydog.errors import ConfigError


@pytest.mark.parametrize(
    "text, expected",
    [("10/s", (10, 1.0)), ("100/m", (100, 60.0)), ("5/10s", (5, 10.0)), ("1000/hour", (1000, 3600.0))],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "0/s", "10/y", "10", "/s"])
def test_parse_rate_errors(text):
    with pytest.raises(ConfigError):
        parse_rate(text)


def test_token_bucket_refills():
    limiter = RateLimiter("2/s")
    limiter.check("c", now=0.0)
    limiter.check("c", now=0.0)
    with pytest.raises(RateLimitedError) as err:
        limiter.check("c", now=0.1)
    assert 0 < err.value.retry_after <= 0.5
    limiter.check("other", now=0.1)  # per client
    limiter.check("c", now=0.6)


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter("1/s", max_clients=10)
    for i in range(100):
        limiter.check(i, now=float(i))
    assert len(limiter._buckets) <= 10


def test_debouncer_window():
    debouncer = Debouncer(1.0)
    marker = object()
    assert debouncer.join("k", now=0.0) is None
    debouncer.start("k", marker, now=0.0)
    assert debouncer.join("k", now=0.5) is marker
    assert debouncer.join("k", now=1.5) is None

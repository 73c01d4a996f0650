"""Query strings read into message fields exactly as Starlette's ``request.query_params`` would."""

import random

import pytest
from starlette.datastructures import QueryParams

from bollydog.entrypoint.http.endpoint import _multi_dict, query_fields


def starlette_fields(query: bytes) -> dict:
    return _multi_dict(QueryParams(query).multi_items())


@pytest.mark.parametrize("query", [
    b"a=1&b=2", b"a=1&a=2&a=3", b"a", b"a=", b"=x", b"a=b=c", b"&&a=1&", b"a=1;b=2",
    b"q=hello+world", b"q=%E2%9C%93&r=%zz", b"a=%2B&a=+", b"x=\xe9", b"name=&name=two",
])
def test_query_fields_read_what_starlette_reads(query):
    # The fast split (no escapes) and parse_qsl (escapes) both give Starlette's query_params.
    assert query_fields(query) == starlette_fields(query)


def test_query_fields_agree_with_starlette_on_random_strings():
    rng = random.Random(11)
    alphabet = "ab=&;+%2E1 x"
    for _ in range(2000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12))).encode()
        assert query_fields(query) == starlette_fields(query), query

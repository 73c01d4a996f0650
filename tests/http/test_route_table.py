"""The route table built from the registry and the http options (no server needed)."""

import pytest

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.http.routes import is_served
from bollydog.errors import ConfigError
from bollydog.service.app import HubService

from conftest import demo_app


def test_is_served_patterns():
    assert is_served("demo.echo", ["*"], [])
    assert not is_served("demo.echo", ["*"], ["demo.*"])
    assert is_served("Demo.Echo", ["demo.e*"], [])
    assert not is_served("other.echo", ["demo.*"], [])


def _build(**options):
    hub = HubService(apps=[demo_app()])
    http = hub.add_entrypoint(HttpService(port=0, **options))
    return http.build_app, http


def test_router_mapping_unknown_message_of_served_domain_is_an_error():
    build, _ = _build(router_mapping={"demo.nosuch": {"methods": ["GET"]}})
    with pytest.raises(ConfigError, match="demo.nosuch"):
        build()


def test_router_mapping_other_domain_is_ignored():
    build, http = _build(router_mapping={"elsewhere.thing": {"methods": ["GET"]}})
    build()
    assert http.routes


def test_router_mapping_patterns_apply_and_aliases_need_exact_keys():
    build, http = _build(router_mapping={"demo.*": {"methods": ["GET"]}, "demo.add": {"methods": ["POST"]}})
    build()
    methods = {s.key: s.methods for s in http.routes}
    assert methods["demo.echo"] == ("GET",) and methods["demo.add"] == ("POST",)
    build, _ = _build(router_mapping={"demo.*": {"aliases": ["/x"]}})
    with pytest.raises(ConfigError, match="pattern"):
        build()


def test_duplicate_paths_are_an_error():
    build, _ = _build(router_mapping={"demo.echo": {"aliases": ["/p"]}, "demo.ping": {"aliases": ["/p"]}})
    with pytest.raises(ConfigError, match="/p"):
        build()
    build, _ = _build(router_mapping={"demo.echo": {"aliases": ["/openapi.json"]}})
    with pytest.raises(ConfigError, match="reserved"):
        build()


@pytest.mark.parametrize(
    "mapping",
    [
        {"demo.echo": {"methods": ["FETCH"]}},
        {"demo.echo": {"aliases": ["relative"]}},
        {"demo.echo": {"debounce": -1}},
        {"demo.echo": {"unknown": 1}},
    ],
)
def test_invalid_router_mapping_entries(mapping):
    with pytest.raises(ConfigError, match="router_mapping"):
        HttpService(port=0, router_mapping=mapping)


def test_invalid_rate_limit():
    build, _ = _build(router_mapping={"demo.echo": {"rate_limit": "fast"}})
    with pytest.raises(ConfigError, match="rate_limit"):
        build()

"""The route table built from the registry and the http options (no server needed)."""

import pytest

from bollydog.entrypoint.http.app import HttpService
from bollydog.names import MessageFilter
from bollydog.errors import ConfigError
from bollydog.service.app import HubService

from conftest import demo_app


def test_filter_patterns():
    assert MessageFilter(["*"], []).allows("demo.echo")
    assert not MessageFilter(["*"], ["demo.*"]).allows("demo.echo")
    assert MessageFilter(["demo.e*"], []).allows("Demo.Echo")
    assert not MessageFilter(["demo.*"], []).allows("other.echo")


def _build(**options):
    hub = HubService(apps=[demo_app()])
    http = hub.add_entrypoint(HttpService(port=0, **options))
    return http.build_app, http


def test_router_mapping_unknown_message_of_served_domain_is_an_error():
    build, _ = _build(router_mapping={"demo.nosuch": {"methods": ["GET"]}})
    with pytest.raises(ConfigError, match="demo.nosuch"):
        build()


def test_router_mapping_naming_nothing_is_an_error_listing_known_names():
    build, _ = _build(router_mapping={"elsewhere.thing": {"methods": ["GET"]}})
    with pytest.raises(ConfigError, match=r"'elsewhere.thing' matches no message.*known: .*demo\.echo"):
        build()


def test_router_mapping_of_a_configured_domain_run_elsewhere_is_accepted():
    # A domain of the config that this process does not load (--include/--exclude, no
    # transport): its names cannot be checked here, so its entries wait for their process.
    hub = HubService(apps=[demo_app()])
    hub.registry.declare_domain("elsewhere", ["somewhere.handlers"])
    http = hub.add_entrypoint(HttpService(port=0, router_mapping={"elsewhere.thing": {"methods": ["GET"]}}))
    http.build_app()
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

"""End to end: HTTP request with traceparent -> command -> yielded sub-commands -> event handlers."""

from __future__ import annotations

import httpx
import pytest

from bollydog.context import parse_traceparent
from bollydog.service.app import HubService
from bollydog.telemetry import TelemetryPlugin
from tests.telemetry.conftest import hex_span, hex_trace, shop_app, spans_by_name

pytest.importorskip("starlette")
from bollydog.entrypoint.http.app import HttpService  # noqa: E402

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def test_one_trace_from_the_http_client_to_the_event_handlers():
    hub = HubService(apps=[shop_app()])
    plugin = TelemetryPlugin(traces_exporter="memory", install_global=False).install(hub)
    http = hub.add_entrypoint(HttpService(port=0))
    async with hub:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            response = await client.post(
                "/shop/store/checkout", json={"order": "o-http"},
                headers={"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"},
            )
        assert response.status_code == 200, response.text
        assert response.json() == {"reserved": "o-http", "charged": 3}
        assert await hub.drain(5)
    trace_id, checkout_span_id = parse_traceparent(response.headers["traceparent"])
    assert trace_id == TRACE

    spans = spans_by_name(plugin)
    every = [span for group in spans.values() for span in group]
    assert {hex_trace(span.context.trace_id) for span in every} == {TRACE}
    assert sorted(span.name for span in every) == [
        "shop.charge", "shop.charge", "shop.checkout", "shop.receipt", "shop.receipt",
        "shop.reserve", "shop.shipped", "shop.shipped",
    ]
    (checkout,) = spans["shop.checkout"]
    # The command's span is the one the response names, and its parent is the client's span.
    assert hex_span(checkout.context.span_id) == checkout_span_id
    assert hex_span(checkout.parent.span_id) == CLIENT_SPAN and checkout.parent.is_remote
    (reserve,) = spans["shop.reserve"]
    assert reserve.parent.span_id == checkout.context.span_id
    assert [c.parent.span_id for c in spans["shop.charge"]] == [checkout.context.span_id] * 2
    assert {r.parent.span_id for r in spans["shop.receipt"]} == {c.context.span_id for c in spans["shop.charge"]}
    shipped = {s.context.span_id: s for s in spans["shop.shipped"]}
    (message_span,) = [s for s in shipped.values() if s.parent.span_id == checkout.context.span_id]
    (other,) = [s for s in shipped.values() if s is not message_span]
    assert other.parent.span_id == message_span.context.span_id

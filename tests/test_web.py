"""/metrics and /healthz: open to the monitoring addresses only, the kiosk behind them."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gated.metrics import Metrics
from gated.web import with_health_routes


class FakeDaemon:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.metrics.inc("gated_transactions_total", lane="1", decision="PROCEED")
        self.metrics.observe("gated_decision_latency_seconds", 0.2)
        self.down = False

    def health_summary(self) -> dict[str, Any]:
        return {"status": "degraded" if self.down else "ok", "lanes": {}}


async def _kiosk_page(_request: Any) -> PlainTextResponse:
    return PlainTextResponse("kiosk")


def _app(daemon: FakeDaemon) -> Starlette:
    return with_health_routes(Starlette(routes=[Route("/", _kiosk_page)]), daemon)


async def _get(app: Starlette, path: str, client: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gate") as http:
        return await http.get(path)


async def test_metrics_and_health_for_loopback_only() -> None:
    daemon = FakeDaemon()
    app = _app(daemon)
    metrics = await _get(app, "/metrics", "127.0.0.1")
    assert metrics.status_code == 200
    assert 'gated_transactions_total{decision="PROCEED",lane="1"} 1' in metrics.text
    assert "gated_decision_latency_seconds_count 1" in metrics.text
    assert (await _get(app, "/healthz", "::1")).json()["status"] == "ok"
    daemon.down = True
    assert (await _get(app, "/healthz", "127.0.0.1")).status_code == 503
    for path in ("/metrics", "/healthz"):
        assert (await _get(app, path, "192.0.2.7")).status_code == 403
    assert (await _get(app, "/", "192.0.2.7")).text == "kiosk"

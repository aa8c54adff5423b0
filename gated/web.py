"""`/metrics` (Prometheus text) and `/healthz` beside the kiosk, on the same port.

They need no login (a scraper has none) but answer only the addresses in
`kiosk.monitoring_from` (loopback by default); they show counts, lane states and device names,
nothing about drivers, credentials or containers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from gated.metrics import Metrics


class Observable(Protocol):
    metrics: Metrics

    def health_summary(self) -> dict[str, Any]: ...


def with_health_routes(
    kiosk: Any, daemon: Observable, allowed: Sequence[str] = ("127.0.0.1", "::1")
) -> Starlette:
    def refused(request: Request) -> Response | None:
        client = request.client.host if request.client else None
        if client not in allowed:
            return PlainTextResponse("monitoring is not open to this address", status_code=403)
        return None

    async def metrics(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        return PlainTextResponse(
            daemon.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def healthz(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        summary = daemon.health_summary()
        return JSONResponse(summary, status_code=200 if summary["status"] == "ok" else 503)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Mount("/", app=kiosk),
        ]
    )

"""`/metrics` (Prometheus text) and `/healthz` beside the kiosk, on the same port, no login:
they show counts and device states, nothing about drivers or containers."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from gated.metrics import Metrics


class Observable(Protocol):
    metrics: Metrics

    def health_summary(self) -> dict[str, Any]: ...


def with_health_routes(kiosk: Any, daemon: Observable) -> Starlette:
    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(
            daemon.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def healthz(_request: Request) -> Response:
        summary = daemon.health_summary()
        return JSONResponse(summary, status_code=200 if summary["status"] == "ok" else 503)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Mount("/", app=kiosk),
        ]
    )

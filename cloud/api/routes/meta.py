"""Operations, on the root application (outside /v1): Prometheus metrics and a health check."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import LOG, METRICS

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (text exposition format)."""
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 with the log size once the store answers."""
    cp = await request.app[LOG].refresh()
    return web.json_response({"status": "ok", "log_size": cp.size})

"""GET /v1/openapi.json: this API's OpenAPI 3.1 document (cloud/api/openapi.py)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.openapi import document

routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return web.json_response(document())

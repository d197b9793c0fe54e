"""The pharmacy counter (docs/contracts.md §6): POST /v1/packs/verify, the verdict on a
scanned pack for a signed-in participant (cloud/services/packs.py). Decommission, undo and
suspect reports are signed transactions (POST /v1/tx)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import json_body
from cloud.api.state import AUTH, PACKS

routes = web.RouteTableDef()

MAX_VERIFY_BYTES = 4096  # a scan's fields, or a Digital Link URI of at most 512 characters


@routes.post("/packs/verify")
async def verify(request: web.Request) -> web.Response:
    """The verdict on a scanned pack: {gtin, serial, lot?, expiry?} or {scan}; authentic
    and dispensable, or why not, with who decommissioned it and when where the reader's
    R→P cell allows."""
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    body = await json_body(request, MAX_VERIFY_BYTES, "scan")
    checked = await request.config_dict[PACKS].verify(body, reader)
    return web.json_response(checked.to_json())

"""Compliance certificates of one subject as the read matrix shows them (docs/contracts.md
§5; cloud/contracts/policy.py certificate_view)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.state import AUTH, READS
from cloud.services.refusals import LedgerError

routes = web.RouteTableDef()


@routes.get("/certificates")
async def certificates(request: web.Request) -> web.Response:
    """The certificates of ?subject= (a participant's did:key, or "<gtin>/<lot>"): in full
    where the compliance cell is yes or the reader is the subject, else validity facts."""
    subject = request.query.get("subject")
    if subject is None:
        raise LedgerError("subject", 'got no query parameter "subject", want one')
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    return web.json_response(await request.config_dict[READS].certificates(subject, reader))

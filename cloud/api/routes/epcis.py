"""GS1 EPCIS 2.0 over the ledger (docs/contracts.md §4 "EPCIS"; cloud/services/epcis.py).

Under /v1 (`routes`):

    GET  /v1/lots/{gtin}/{lot}/epcis   the lot's and its descendants' EPCISDocument

Under /epcis (`binding`, the sub-application of cloud/api/epcis.py, whose errors are
EPCIS-style problems), after the EPCIS 2.0 REST bindings:

    GET  /epcis/events    SimpleEventQuery parameters -> EPCISQueryDocument, paged with
                          perPage and a `Link: <…>; rel="next"` header
    POST /epcis/capture   a partner's EPCISDocument, signed by a `statement` transaction in
                          the PharmaSync-Statement header (base64url of its JSON envelope)

Every read takes the bearer token as the other routes do (none: the public), and the
EPCIS 2.0 `GS1-EPC-Format` header (cloud/contracts/epcis_format.py: No_Preference,
Always_GS1_Digital_Link, Always_EPC_URN), answered with the format applied in the same
header; an unknown value is a 400 "GS1-EPC-Format".
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from aiohttp import web

from cloud.api.routes import body_bytes, lot_path
from cloud.api.state import AUTH, EPCIS
from cloud.contracts import epcis_format, tx
from cloud.services.refusals import LedgerError
from gateway import jsonbound

JSON_LD: Final = "application/ld+json"
STATEMENT_HEADER: Final = "PharmaSync-Statement"
MAX_CAPTURE: Final = 1024 * 1024  # bytes of a captured document (at most 1,000 events)
MAX_STATEMENT: Final = (tx.MAX_ENVELOPE * 4) // 3 + 4  # the header's base64url

routes = web.RouteTableDef()
binding = web.RouteTableDef()


@routes.get("/lots/{gtin}/{lot}/epcis")
async def export(request: web.Request) -> web.Response:
    """The lot's and its descendants' events as an EPCISDocument (JSON-LD), as the read
    policy shows them to the bearer."""
    gtin, lot = lot_path(request)
    wanted = _format(request)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    document = await request.config_dict[EPCIS].export(gtin, lot, reader, epc_format=wanted)
    response = web.json_response(document, content_type=JSON_LD)
    response.headers[epcis_format.HEADER] = wanted
    return response


@binding.get("/events")
async def events(request: web.Request) -> web.Response:
    """One page of the events matching the query, with the next page's link."""
    params = {name: request.query.getall(name) for name in request.query}
    wanted = _format(request)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    document, cursor = await request.config_dict[EPCIS].query(params, reader, epc_format=wanted)
    response = web.json_response(document, content_type=JSON_LD)
    response.headers[epcis_format.HEADER] = wanted
    if cursor is not None:
        following = request.url.update_query({"nextPageToken": cursor.token()})
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


@binding.post("/capture")
async def capture(request: web.Request) -> web.Response:
    """Record the partner's signed statement of the document, or refuse it naming the
    first event that contradicts the ledger."""
    envelope = _statement(request.headers.get(STATEMENT_HEADER))
    body = await body_bytes(request, MAX_CAPTURE, "document")
    accepted, digest, count = await request.config_dict[EPCIS].capture(body, envelope)
    answer = {"statement": accepted.to_json(), "document": digest, "events": count}
    return web.json_response(answer, status=201)


def _format(request: web.Request) -> str:
    """The identifier format the request asks for. Raises LedgerError 400 "GS1-EPC-Format"
    for a value EPCIS 2.0 does not define."""
    try:
        return epcis_format.preference(request.headers.get(epcis_format.HEADER))
    except ValueError as e:
        raise LedgerError(epcis_format.HEADER, str(e)) from None


def _statement(header: str | None) -> object:
    """The statement's envelope from its header. Raises LedgerError 401 "statement"
    without one, 400 "statement" for one that is not base64url of bounded JSON."""
    if header is None:
        raise LedgerError("statement", f"an unsigned capture: want a {STATEMENT_HEADER}", 401)
    if len(header) > MAX_STATEMENT:
        raise LedgerError("statement", f"over {MAX_STATEMENT} characters")
    try:
        raw = base64.urlsafe_b64decode(header.strip() + "=" * (-len(header.strip()) % 4))
    except (binascii.Error, ValueError):
        raise LedgerError("statement", "want base64url of the envelope's JSON") from None
    try:
        return jsonbound.loads(raw, max_bytes=tx.MAX_ENVELOPE, what="statement")
    except jsonbound.JsonError as e:
        raise LedgerError("statement", e.detail) from None

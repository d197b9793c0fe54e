"""The cloud's HTTP API, one module per route group; each exposes `routes`.

Under /v1 (the sub-application of cloud/api/v1.py; paths in the modules are relative to it):

batches.py     POST /v1/batches                          gateway uploads
receipts.py    /v1/batches/{gateway}/{seq}/receipt       cosigned receipts
log.py         /v1/checkpoint, /v1/log/...               the verifiable log
readings.py    /v1/readings/..., /v1/devices/.../readings   proof bundles, history
evidence.py    /v1/devices/.../equivocations, .../sightings  readings carried again
registry.py    /v1/registry, /v1/devices, /v1/gateways   who may send what
config.py      /v1/config, /v1/registry/entries          owners on the log; what gateways follow
events.py      /v1/events, /v1/gateways/{key}/events     signed gateway events
alarm_acks.py  /v1/alarm-acks, /v1/gateways/{key}/alarm-acks   relayed alarm acknowledgements
gateway_lots.py /v1/gateways/{key}/lots                  lots of a gateway's boxes (signed read)
contracts.py   /v1/tx, /v1/state, /v1/lots/{gtin}/{lot}   contract transactions, state proofs
lot_columns.py /v1/lots/{gtin}/{lot}/columns/{column}   one column of a lot, or 403 naming its cell
participants.py /v1/participants[/{did}]                 participants, as the read matrix allows
certificates.py /v1/certificates?subject=                 certificates, as the read matrix allows
traces.py      /v1/lots/{gtin}/{lot}/trace               recall traces
feeds.py       /v1/feed, /v1/feed/stream                 participants' notification feeds
lot_history.py /v1/lots/{gtin}/{lot}/history             a lot's legs and cold chain
epcis.py       /v1/lots/{gtin}/{lot}/epcis; /epcis/events, /epcis/capture (cloud/api/epcis.py)
openapi.py     /v1/openapi.json                          the API's document

On the root application (cloud/api/app.py):

home.py        /                                         the landing page
meta.py        /metrics, /healthz                        operations

Views are thin: each reads its input here and calls the service it needs (cloud/api/state.py
names them); the services' refusals become problem+json in the error middleware
(cloud/api/problems.py).

What enters through a route is read here, bounded where it enters: integers in paths and
queries by `path_int`/`int_query` (in a range the databases hold), JSON bodies by
`json_body` (size and nesting bounded before parsing, gateway/jsonbound.py).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from cloud.contracts import lots_fields
from cloud.services.refusals import LedgerError
from gateway import jsonbound
from gateway.refusal import INT64_MAX, decimal_field

MAX_INT: Final = INT64_MAX  # what the databases store: sizes, times, sequence numbers
MAX_INDEX: Final = INT64_MAX - 1  # a log index: below a log size, itself at most MAX_INT


def int_query(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT,
) -> int:
    """Return query parameter `name` as an int in [minimum, maximum]. Raises LedgerError
    400 with reason `name` if it is absent (without a default) or not such an int."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise LedgerError(name, f"got no query parameter {name!r}, want one")
        return default
    return decimal_field(raw, name, minimum, maximum, LedgerError)


def path_int(request: web.Request, name: str, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """Return path part `name` as an int in [minimum, maximum]. Raises LedgerError 400
    with reason `name` otherwise."""
    return decimal_field(request.match_info[name], name, minimum, maximum, LedgerError)


def lot_path(request: web.Request) -> tuple[str, str]:
    """Return the path's {gtin} (as a GTIN-14) and {lot} (GS1 AI 10). Raises LedgerError
    400 with reason "gtin" or "lot"."""
    try:
        gtin = lots_fields.gtin14(request.match_info["gtin"])
    except ValueError as e:
        raise LedgerError("gtin", str(e)) from None
    try:
        return gtin, lots_fields.lot_number(request.match_info["lot"])
    except ValueError as e:
        raise LedgerError("lot", str(e)) from None


async def json_body(request: web.Request, max_bytes: int, what: str = "body") -> Any:
    """Return the request's JSON body, read only up to `max_bytes` and parsed only within
    jsonbound's limits. Raises JsonError: 413 for a larger body, 400 for a malformed one."""
    data = await body_bytes(request, max_bytes, what)
    return jsonbound.loads(data, max_bytes=max_bytes, what=what)


async def body_bytes(request: web.Request, max_bytes: int, what: str = "body") -> bytes:
    """Return the request's body, read only up to `max_bytes` (for a caller that needs
    the bytes themselves, e.g. to hash them). Raises JsonError 413 for a larger body."""
    size = request.content_length
    if size is not None and size > max_bytes:
        raise jsonbound.JsonError(what, f"{size} bytes", f"at most {max_bytes}", 413)
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > max_bytes:
            raise jsonbound.JsonError(what, f"over {max_bytes} bytes", f"at most {max_bytes}", 413)
    return bytes(data)

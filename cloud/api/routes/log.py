"""The verifiable log: checkpoints, entries and proofs (docs/protocol.md, "The ledger's log")."""

from __future__ import annotations

from aiohttp import web

from cloud.api.routes import MAX_INDEX, int_query, path_int
from cloud.api.state import LOG, READINGS
from gateway.refusal import hex_field

routes = web.RouteTableDef()


@routes.get("/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint note (C2SP tlog-checkpoint), with any cosignatures."""
    cp = await request.config_dict[LOG].refresh()
    return web.Response(text=cp.note, content_type="text/plain")


@routes.get("/log/vkey")
async def vkey(request: web.Request) -> web.Response:
    """The log's verifier key in the signed-note format."""
    return web.Response(text=request.config_dict[LOG].log_vkey + "\n", content_type="text/plain")


@routes.get("/log/entries")
async def entries(request: web.Request) -> web.Response:
    """Entries [start, end) of the log, hex; at most 1,000 per answer."""
    start = int_query(request, "start")
    end = int_query(request, "end", start + 1000)
    log = request.config_dict[LOG]
    await log.refresh()  # another worker may have appended: serve what the log holds
    found = await log.entries(start, end)
    return web.json_response({"start": start, "entries": [e.hex() for e in found]})


@routes.get("/log/entries/{index}/readings")
async def entry_readings(request: web.Request) -> web.Response:
    """The readings of a batch entry: 110-byte readings in leaf order."""
    index = path_int(request, "index", 0, MAX_INDEX)
    await request.config_dict[LOG].refresh()
    found = await request.config_dict[READINGS].entry_readings(index)
    return web.Response(body=b"".join(found), content_type="application/octet-stream")


@routes.get("/log/proof/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """Inclusion proof of an entry, by `index` or by leaf `hash`, in the log of `size`
    entries (default: the latest checkpoint's)."""
    log = request.config_dict[LOG]
    await log.refresh()
    size = int_query(request, "size", log.checkpoint.size)
    if "hash" in request.query:
        index = await log.find(hex_field(request.query["hash"], "hash", 32))
    else:
        index = int_query(request, "index", maximum=MAX_INDEX)
    size, proof = await log.inclusion(index, size)
    leaf_hash = await log.leaf_hash(index)
    return web.json_response(
        {
            "index": index,
            "size": size,
            "leaf_hash": leaf_hash.hex(),
            "proof": [h.hex() for h in proof],
        }
    )


@routes.get("/log/proof/consistency")
async def consistency(request: web.Request) -> web.Response:
    """Consistency proof from the log of `old` entries to that of `new` (default: latest)."""
    log = request.config_dict[LOG]
    await log.refresh()
    old = int_query(request, "old")
    new, proof = await log.consistency(old, int_query(request, "new", log.checkpoint.size))
    return web.json_response({"old": old, "new": new, "proof": [h.hex() for h in proof]})

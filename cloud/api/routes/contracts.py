"""Contract transactions and state (docs/contracts.md): POST a signed transaction (or a batch
of them), read the latest state root, and a lot's public facts with their state proofs."""

from __future__ import annotations

from aiohttp import web

from cloud.api.problems import problem_json
from cloud.api.routes import MAX_INDEX, body_bytes, int_query, json_body, lot_path
from cloud.api.state import AUTH, CONTRACTS, READS, REFUSALS, REPLAY
from cloud.contracts import tx
from cloud.services.refusals import LedgerError
from cloud.services.replay import MAX_PAGE

routes = web.RouteTableDef()

MAX_BATCH = 256  # envelopes in one POST /v1/tx/batch: a group-commit block's worth
MAX_BATCH_BYTES = 16 * tx.MAX_ENVELOPE  # each entry is bounded by tx.MAX_ENVELOPE too


@routes.post("/tx")
async def post_tx(request: web.Request) -> web.Response:
    """Apply a signed transaction envelope {"tx", "sig"}; 201 with its 0x03 entry's index,
    its id, and the state root and record count after it. A body over tx.MAX_ENVELOPE is
    taken only for a bulk type (tx.load_envelope: a lot's pack serials)."""
    envelope = tx.load_envelope(await body_bytes(request, tx.MAX_BULK_ENVELOPE, "transaction"))
    accepted = await request.config_dict[CONTRACTS].submit(envelope)
    return web.json_response(accepted.to_json(), status=201)


@routes.post("/tx/batch")
async def post_tx_batch(request: web.Request) -> web.Response:
    """Apply a JSON array of 1 to MAX_BATCH signed transaction envelopes (at most
    MAX_BATCH_BYTES), in their order, each on its own (all or nothing, as POST /v1/tx);
    200 with "results": per envelope, in the same order, its 201 answer or its problem
    document, each with its "status". The whole request is refused (400 "batch", 413) only
    when it is not such an array."""
    envelopes = await json_body(request, MAX_BATCH_BYTES, "batch")
    if type(envelopes) is not list or not 1 <= len(envelopes) <= MAX_BATCH:
        got = f"{len(envelopes)} entries" if type(envelopes) is list else "not an array"
        want = f"an array of 1 to {MAX_BATCH} transaction envelopes"
        raise request.config_dict[REFUSALS].refuse("batch", f"batch: got {got}, want {want}", 400)
    outcomes = await request.config_dict[CONTRACTS].submit_many(envelopes)
    results = [
        problem_json(o.status, o.reason, o.detail)
        if isinstance(o, LedgerError)
        else {"status": 201, **o.to_json()}
        for o in outcomes
    ]
    return web.json_response({"results": results})


@routes.get("/tx")
async def replay_page(request: web.Request) -> web.Response:
    """Stored transaction bodies after log index `after` (absent: from the start), at
    most `limit` (default and maximum 1000), for a signed-in reader holding a replay grant
    for each contract in the page (cloud/services/replay.py): 401 without a token, 403
    without a grant."""
    after = int_query(request, "after", -1, minimum=0, maximum=MAX_INDEX)  # absent: the start
    limit = int_query(request, "limit", MAX_PAGE, minimum=1, maximum=MAX_PAGE)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    page = await request.config_dict[REPLAY].page(reader, after, limit)
    return web.json_response(page.to_json())


@routes.get("/state")
async def state(request: web.Request) -> web.Response:
    """The latest state root: root, record count, the last 0x03 entry it covers and the
    index of the 0x04 entry holding it (null before the first transaction)."""
    head = await request.config_dict[CONTRACTS].current()
    return web.json_response(head.to_json())


@routes.get("/lots/{gtin}/{lot}")
async def lot(request: web.Request) -> web.Response:
    """A lot's public records (identity, quality status, recall), each null if absent, each
    with its proof (cloud/contracts/statetree_proof.py) against the latest root. Private
    records are shown only as the read policy allows the reader (cloud/contracts/policy.py
    lot_view): "columns" by access-matrix column, "withheld" naming the cells of the others,
    and the custody record, all without proofs."""
    gtin, number = lot_path(request)
    reader = await request.config_dict[AUTH].bearer(request.headers.get("Authorization"))
    head, records, _ = await request.config_dict[CONTRACTS].lot(gtin, number, reader)
    answer = {
        "gtin": gtin,
        "lot": number,
        "state": head.to_json(),
        "records": {r.name: {"value": r.value, "proof": r.proof.to_json()} for r in records},
    }
    # the private columns (and custody) as the read policy allows: no proofs, their leaves
    # commit with a salt
    answer.update(await request.config_dict[READS].lot(gtin, number, reader))
    return web.json_response(answer)

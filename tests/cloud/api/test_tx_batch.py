"""POST /v1/tx/batch (cloud/api/routes/contracts.py, ContractService.submit_many) on SQLite
and PostgreSQL: the envelopes of a batch apply in their order, each on its own — a later
one sees an earlier one applied, a malformed, forged, replayed, oversized or refused entry
gets its own precise problem document and leaves nothing, the others stay; a body that is
not an array of 1 to MAX_BATCH entries is refused whole."""

from __future__ import annotations

import json
from typing import Any

from cloud.api.routes.contracts import MAX_BATCH, MAX_BATCH_BYTES
from cloud.contracts import tx
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_tx import (  # noqa: F401
    D,
    M,
    admit,
    applied,
    bad_nonce,
    cloud,
    commission,
    forged_signature,
    log_size,
    receive,
    ship,
)
from tests.cloud.contracts.world import party


async def batch(ledger: Cloud, entries: list[Any]) -> tuple[int, Any]:
    """POST the entries (SignedTx as their envelope, bytes as the JSON they hold, anything
    else as it is) as one batch."""
    body = [
        e.to_envelope() if isinstance(e, tx.SignedTx) else json.loads(e)
        if isinstance(e, bytes) else e
        for e in entries
    ]  # fmt: skip
    return await ledger.post("/v1/tx/batch", json.dumps(body).encode(), "application/json")


async def test_a_batch_applies_in_order_each_on_its_own(cloud: Cloud) -> None:  # noqa: F811
    steps = [admit("M"), admit("D"), commission("L1", 10), ship(M, "L1", "S1", D, 4)]
    steps.append(receive(D, "S1", 4))  # each depends on the ones before it
    status, answer = await batch(cloud, steps)
    assert status == 200, answer
    results = answer["results"]
    assert [r["status"] for r in results] == [201] * 5, results
    assert [r["id"] for r in results] == [s.id for s in steps]
    indices = [r["index"] for r in results]
    assert indices == sorted(indices) and len(set(indices)) == 5
    _, head = await cloud.get("/v1/state")
    assert head["root"] == results[-1]["root"] and head["covers"] == indices[-1]
    status, facts = await cloud.get("/v1/lots/09506000134352/L1")
    assert status == 200 and facts["records"]["lot"]["value"] is not None


async def test_each_bad_entry_gets_its_own_problem_and_leaves_nothing(
    cloud: Cloud,  # noqa: F811
) -> None:
    for step in (admit("M"), admit("D")):
        await applied(cloud, step)
    done = commission("L1", 10)
    await applied(cloud, done)
    size = await log_size(cloud)
    good = commission("L2", 5)
    huge = tx.make("lots", "commission", {"note": "x" * tx.MAX_ENVELOPE}, M.secret)
    entries: list[Any] = [
        good,
        42,  # not an envelope
        {"tx": {}, "sig": "00"},  # malformed
        bad_nonce(commission("L3", 1)),
        forged_signature(commission("L3", 1)),  # forged
        commission("L3", 1, who=party("stranger")),  # not a participant
        commission("L3", 1, who=D),  # a distributor cannot commission
        done,  # replayed: already on the log
        good,  # replayed within the batch
        huge,  # over tx.MAX_ENVELOPE on its own
        ship(M, "L2", "S1", D, 6),  # more than L2 holds (5)
        ship(M, "L2", "S1", D, 5),  # sees L2 commissioned earlier in this batch
    ]
    status, answer = await batch(cloud, entries)
    assert status == 200, answer
    got = [(r["status"], r.get("reason")) for r in answer["results"]]
    assert got == [
        (201, None),
        (400, "envelope"),
        (400, "sig"),
        (400, "tx.nonce"),
        (401, "signature"),
        (403, "participant"),
        (403, "access"),
        (409, "replayed"),
        (409, "replayed"),
        (413, "transaction"),
        (409, "quantity"),
        (201, None),
    ], answer
    refused = [r for r in answer["results"] if r["status"] != 201]
    assert all(r["detail"] and r["type"] == "about:blank" for r in refused)
    # two transactions applied: their two 0x03 entries and at most two 0x04 roots
    assert size + 3 <= await log_size(cloud) <= size + 4
    _, head = await cloud.get("/v1/state")
    assert head["root"] == answer["results"][-1]["root"]
    await applied(cloud, receive(D, "S1", 5))  # and the ledger takes the next good one


async def test_a_body_that_is_not_a_batch_is_refused_whole(cloud: Cloud) -> None:  # noqa: F811
    await applied(cloud, admit("M"))
    size = await log_size(cloud)
    for body, reason in (
        (b"{}", "batch"),
        (b"[]", "batch"),
        (json.dumps([commission(f"L{n}", 1).to_envelope() for n in range(MAX_BATCH + 1)]).encode(),
         "batch"),
        (b"[1,", "json"),
    ):  # fmt: skip
        status, problem = await cloud.post("/v1/tx/batch", body, "application/json")
        assert (status, problem["reason"]) == (400, reason), problem
    status, problem = await cloud.post(
        "/v1/tx/batch", b"[" + b" " * MAX_BATCH_BYTES + b"]", "application/json"
    )
    assert status == 413, problem
    assert await log_size(cloud) == size

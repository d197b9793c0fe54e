"""Serialized packs in EPCIS over HTTP (GET /v1/lots/{gtin}/{lot}/epcis, GET /epcis/events;
cloud/contracts/epcis_serials.py), on SQLite and PostgreSQL: the export of a serialized
lot holds its commissioning with every pack's Digital Link URI, each decommission and undo;
MATCH_epc / MATCH_anyEPC with a pack's URI find its events, also after a split moved it to
a child lot; who decommissioned shows only where the reader's R→P cell allows; every
document is valid EPCIS 2.0."""

from __future__ import annotations

from typing import Any

from cloud.contracts import epcis
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_epcis import export, query, valid
from tests.cloud.api.test_packs import (
    P2,
    SERIALS,
    P,
    R,
    chain_steps,
    decommission,
    lots_tx,
)
from tests.cloud.api.test_tx import applied
from tests.cloud.contracts.world import GTIN, REGULATOR


def pack(serial: str) -> str:
    return epcis.serial_uri(GTIN, serial)


def events(document: dict[str, Any]) -> list[dict[str, Any]]:
    body = document["epcisBody"]
    found = body["queryResults"]["resultsBody"] if "queryResults" in body else body
    return list(found["eventList"])


async def test_serial_events_exported_and_queried(regulated: Cloud) -> None:
    for step in chain_steps():
        await applied(regulated, step)
    await applied(regulated, decommission(P, "PK00007"))
    await applied(regulated, decommission(P, "PK00008", "destroyed"))
    await applied(regulated, lots_tx(P, "undo", {"serial": "PK00007"}))
    status, document = await export(regulated, P)
    assert status == 200, document
    valid(document)
    found = events(document)
    commissioned = [e for e in found if e.get("epcList") and e["bizStep"] == "commissioning"]
    sizes = [len(e["epcList"]) for e in commissioned]
    assert sorted(sizes[:2]) == [50, 150] and sizes[2] == 1  # two registrations, the undo
    first = next(e for e in commissioned if len(e["epcList"]) == 150)
    assert first["epcList"][:2] == [pack(SERIALS[0]), pack(SERIALS[1])]
    deleted = [
        (e["epcList"], e["bizStep"], e["disposition"]) for e in found if e.get("action") == "DELETE"
    ]
    assert deleted == [
        ([pack("PK00007")], "dispensing", "dispensed"),
        ([pack("PK00008")], "destroying", "destroyed"),
    ]
    # MATCH_epc with a pack's URI: its commissioning, its dispense and its undo
    for who in (P, REGULATOR):
        status, answer, _ = await query(regulated, who, {"MATCH_epc": pack("PK00007")})
        assert status == 200, answer
        valid(answer)
        shown = events(answer)
        # its registration (every serial of it) only to a reader of the product in full;
        # its dispense and undo (when, and by whom) only to a reader of R→P: the regulator,
        # global only on both, gets none of them (a pack's status is public at its link)
        want = ["ADD", "DELETE", "ADD"] if who is P else []
        assert [e["action"] for e in shown] == want, who
        if who is P:
            assert shown[-2]["readPoint"] == {"id": P.did}
    status, answer, _ = await query(regulated, P2, {"MATCH_anyEPC": pack("PK00008")})
    assert [e.get("disposition") for e in events(answer)] == ["active", "destroyed"]
    status, answer, _ = await query(regulated, P, {"MATCH_epc": pack("NEVER")})
    assert status == 200 and events(answer) == []
    status, answer, _ = await query(
        regulated, P, {"MATCH_epc": pack("PK00007"), "EQ_bizStep": "dispensing"}
    )
    assert [e["action"] for e in events(answer)] == ["DELETE"]


async def test_a_pack_moved_by_a_split_is_found_in_its_child_lot(regulated: Cloud) -> None:
    for step in chain_steps():
        await applied(regulated, step)
    # R holds 0 of L1 after shipping 20 on: the pharmacy P's 10 are split instead
    children = [{"lot": "L1-P", "quantity": 6}, {"lot": "L1-Q", "quantity": 4}]
    named = {"L1-P": SERIALS[:6], "L1-Q": SERIALS[6:10]}
    split = {"lot": "L1", "children": children, "serials": named}
    await applied(regulated, lots_tx(P, "split", split))
    await applied(regulated, decommission(P, SERIALS[7]))
    status, answer, _ = await query(regulated, P, {"MATCH_anyEPC": pack(SERIALS[7])})
    assert status == 200, answer
    valid(answer)
    shown = events(answer)
    assert [e["type"] for e in shown] == ["ObjectEvent", "TransformationEvent", "ObjectEvent"]
    assert shown[1]["outputQuantityList"][0]["epcClass"] == epcis.lot_uri(GTIN, "L1-Q")
    assert pack(SERIALS[7]) in shown[1]["outputEPCList"]
    assert shown[2]["action"] == "DELETE"
    status, child = await export(regulated, R, "L1-Q")
    assert status == 200, child
    valid(child)
    assert any(e.get("epcList") == [pack(SERIALS[7])] for e in events(child))

"""EPCIS 2.0 events of serialized packs (cloud/contracts/epcis_serials.py), pure: a lot's
serials registered in two transactions, a split naming each child's packs, packs dispensed,
destroyed and stolen at a pharmacy, one dispense undone — each event kind checked, SGTINs
written as Digital Link URIs, documents valid against GS1's EPCIS 2.0 JSON Schema, who
decommissioned shown only to readers of the R→P flow, MATCH_epc / MATCH_anyEPC naming
packs."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from cloud.contracts import (
    access,
    epcis,
    epcis_format,
    epcis_query,
    epcis_serials,
    epcis_statement,
    gs1_prefixes,
    participants,
    policy,
)
from tests.cloud.api.test_epcis import valid
from tests.cloud.contracts.test_epcis import LATER, Ledger, commission_args, gtin_lot
from tests.cloud.contracts.test_lots_coldchain import NOW
from tests.cloud.contracts.world import GTIN

SERIALS = [f"PK{i:05d}" for i in range(100)] + ["A/B%1"]  # one needing percent-encoding
CHILD_A = SERIALS[10:50]
CHILD_B = SERIALS[50:70]


def packs_chain() -> Ledger:
    """M commissions L1 (101) and registers its serials (60, then 41); ships 101 to D, D
    60 to R; R splits them naming the packs (L1-A 40, L1-B 20) and ships L1-A to P; P
    dispenses PK00010, destroys PK00011, reports PK00012 stolen, dispenses PK00013 and
    undoes that."""
    ledger = Ledger()
    ledger.tx("M", "commission", {**commission_args(), "quantity": 101}, NOW - 9000)
    ledger.tx("M", "serialize", {**gtin_lot(), "serials": SERIALS[:60]}, NOW - 8000)
    ledger.tx("M", "serialize", {**gtin_lot(), "serials": SERIALS[60:]}, NOW - 7000)
    ship = {"gtin": GTIN, "lot": "L1", "shipment": "S1", "quantity": 101}
    ledger.tx("M", "ship", {**ship, "receiver": ledger.did("D")}, NOW - 6000)
    ledger.tx("D", "receive", {"shipment": "S1", "quantity": 101}, NOW - 5000)
    ship2 = {"gtin": GTIN, "lot": "L1", "shipment": "S2", "quantity": 60}
    ledger.tx("D", "ship", {**ship2, "receiver": ledger.did("R")}, NOW - 4000)
    ledger.tx("R", "receive", {"shipment": "S2", "quantity": 60}, NOW - 3000)
    children = [{"lot": "L1-A", "quantity": 40}, {"lot": "L1-B", "quantity": 20}]
    named = {"L1-A": CHILD_A, "L1-B": CHILD_B}
    ledger.tx("R", "split", {**gtin_lot(), "children": children, "serials": named}, NOW - 2000)
    ship3 = {"gtin": GTIN, "lot": "L1-A", "shipment": "S3", "quantity": 40}
    ledger.tx("R", "ship", {**ship3, "receiver": ledger.did("P")}, NOW - 1000)
    ledger.tx("P", "receive", {"shipment": "S3", "quantity": 40}, NOW)
    for n, (serial, status) in enumerate(
        (("PK00010", "dispensed"), ("PK00011", "destroyed"), ("PK00012", "stolen"))
    ):
        pack = {"gtin": GTIN, "serial": serial, "status": status}
        ledger.tx("P", "decommission", pack, NOW + 1000 * (n + 1))
    ledger.tx("P", "decommission", {"gtin": GTIN, "serial": "PK00013", "status": "dispensed"},
              NOW + 5000)  # fmt: skip
    ledger.tx("P", "undo", {"gtin": GTIN, "serial": "PK00013"}, NOW + 6000)
    return ledger


def pack_uri(serial: str) -> str:
    return epcis.serial_uri(GTIN, serial)


def test_each_serial_event_kind() -> None:
    ledger = packs_chain()
    found = ledger.events("M")
    valid(epcis.document(found, LATER))
    commissioned = [e.body for e in found if e.body.get("epcList") and e.body["action"] == "ADD"]
    first, second, undone = commissioned
    assert first["bizStep"] == "commissioning" and first["disposition"] == "active"
    assert first["epcList"] == [pack_uri(s) for s in SERIALS[:60]]  # as signed
    assert second["epcList"][-1] == f"https://id.gs1.org/01/{GTIN}/21/A%2FB%251"
    assert first["ilmd"] == {"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": "2027-12-31"}
    assert first["bizLocation"] == {"id": ledger.did("M")}
    # the undo: the identifier back in use (ADD, commissioning, active), no ilmd
    assert undone["epcList"] == [pack_uri("PK00013")] and "ilmd" not in undone
    assert undone["readPoint"] == {"id": ledger.did("P")}
    deleted = {e.body["epcList"][0]: e.body for e in found if e.body.get("action") == "DELETE"}
    assert {uri: (b["bizStep"], b["disposition"]) for uri, b in deleted.items()} == {
        pack_uri("PK00010"): ("dispensing", "dispensed"),
        pack_uri("PK00011"): ("destroying", "destroyed"),
        pack_uri("PK00012"): ("decommissioning", "stolen"),
        pack_uri("PK00013"): ("dispensing", "dispensed"),
    }
    # the split: one TransformationEvent per child, its packs in and out
    splits = [e.body for e in found if e.body["type"] == "TransformationEvent"]
    assert len(splits) == 2
    by_child = {b["ilmd"]["cbvmda:lotNumber"]: b for b in splits}
    assert by_child["L1-A"]["inputEPCList"] == [pack_uri(s) for s in CHILD_A]
    assert by_child["L1-A"]["outputEPCList"] == by_child["L1-A"]["inputEPCList"]
    assert by_child["L1-B"]["outputQuantityList"] == [
        {"epcClass": epcis.lot_uri(GTIN, "L1-B"), "quantity": 20}
    ]
    # a child's own history holds its own split event, not its sibling's
    only_b = ledger.events("M", ("L1-B",))
    assert [e.body["ilmd"]["cbvmda:lotNumber"] for e in only_b if e.body.get("ilmd")] == ["L1-B"]


def test_undo_follows_its_decommission_and_every_status_has_cbv_terms() -> None:
    ledger = packs_chain()
    found = [e for e in ledger.events("P") if (GTIN, "PK00013") in e.serials]
    actions = [e.body.get("action") for e in found]
    assert actions == ["ADD", None, "DELETE", "ADD"]  # commissioned, split, dispensed, undone
    assert set(epcis_serials.DECOMMISSIONED) == {
        "dispensed",
        "destroyed",
        "stolen",
        "exported",
        "sample",
    }
    for status, (step, disposition) in epcis_serials.DECOMMISSIONED.items():
        assert step and disposition, status


@pytest.mark.parametrize("reader", ["M", "D", "R", "P", "P2", "regulator", None])
def test_who_decommissioned_only_to_readers_of_r_to_p(reader: str | None) -> None:
    ledger = packs_chain()
    found = ledger.events(reader)
    valid(epcis.document(found, LATER))
    deleted = [e.body for e in found if e.body.get("action") == "DELETE"]
    role = "public" if reader is None else ledger.reader(reader).role
    r = ledger.reader(reader)
    sees = policy.reads(role, access.R_TO_P, r.id is not None and r.involved(GTIN, "L1-A", r.id))
    if not sees:  # when a pack was dispensed is R→P data: its status alone is public
        assert deleted == [], reader  # (the Digital Link resolver answers it)
        return
    assert len(deleted) == 4
    text = json.dumps(deleted)
    assert ledger.did("P") in text, reader
    assert all("readPoint" in b for b in deleted)


@pytest.mark.parametrize("reader", ["M", "D", "P", "regulator", None])
def test_a_registrations_serial_list_only_to_readers_of_the_product_in_full(
    reader: str | None,
) -> None:
    """A registration keeps its serials as a Merkle root (a public count and root), so no
    one can list a lot's valid serials without a pack in hand: a serialize event's epcList
    (every serial registered) goes only to a reader whose product cell is yes, not to the
    public's and the regulator's global only (who could print valid serials for clones)."""
    ledger = packs_chain()
    registered = [
        e.body
        for e in ledger.events(reader)
        if e.body.get("bizStep") == "commissioning" and "ilmd" in e.body and "epcList" in e.body
    ]
    role = "public" if reader is None else ledger.reader(reader).role
    assert len(registered) == (2 if policy.reads(role, access.PRODUCT) else 0), reader
    if reader is None:
        text = json.dumps([e.body for e in ledger.events(reader)])
        assert SERIALS[20] not in text  # never decommissioned, split or undone: not named


def test_match_epc_and_any_epc_name_packs() -> None:
    ledger = packs_chain()
    found = ledger.events("M")

    def matching(name: str, *serials: str) -> list[Any]:
        query = epcis_query.parse({name: ["|".join(pack_uri(s) for s in serials)]})
        return [e for e in found if query.matches(e)]

    epc = matching("MATCH_epc", "PK00013")
    assert [e.body.get("action") for e in epc] == ["ADD", "DELETE", "ADD"]  # no split
    anyepc = matching("MATCH_anyEPC", "PK00013")
    assert [e.body["type"] for e in anyepc].count("TransformationEvent") == 1
    assert len(matching("MATCH_epc", "PK00010", "PK00011")) == 3  # 1 commissioning, 2 DELETE
    assert matching("MATCH_epc", "PK99999") == []
    # a pack's URI with its lot names the pack: /01/{gtin}/10/{lot}/21/{serial}
    both = epcis_query.parse({"MATCH_epc": [f"https://id.gs1.org/01/{GTIN}/10/L1-A/21/PK00011"]})
    assert {e.event_id for e in found if both.matches(e)} >= {e.event_id for e in epc[:1]}
    # the lots a pack URI narrows a query to: what the caller's index says it was in
    q = epcis_query.parse({"MATCH_epc": [pack_uri("PK00013")]})
    assert q.lots() == set()
    assert q.lots(lambda g, s: [(g, "L1"), (g, "L1-A")]) == {(GTIN, "L1"), (GTIN, "L1-A")}


def test_the_epc_list_fast_path_writes_what_serial_uri_writes() -> None:
    serials = ["PK0001", "a-b", "A/B", "x.y", "Z9", "%41", "!"]
    assert epcis_serials.epc_list(GTIN, serials) == [pack_uri(s) for s in serials]


SSCC = "106141411234567897"  # GS1's example SSCC (extension 1, GCP 0614141, check digit 7)


def packed_chain() -> Ledger:
    """M commissions L1 (101), registers its serials and ships 101 to D (S1) naming 30 packs
    in a pallet (an SSCC); D receives, ships 60 to R (S2) naming 10 packs and no SSCC; R
    receives."""
    ledger = Ledger()
    ledger.tx("M", "commission", {**commission_args(), "quantity": 101}, NOW - 9000)
    ledger.tx("M", "serialize", {**gtin_lot(), "serials": SERIALS}, NOW - 8000)
    ship = {**gtin_lot(), "shipment": "S1", "quantity": 101, "receiver": ledger.did("D")}
    ledger.tx("M", "ship", {**ship, "serials": SERIALS[:30], "sscc": SSCC}, NOW - 6000)
    ledger.tx("D", "receive", {"shipment": "S1", "quantity": 101}, NOW - 5000)
    ship2 = {**gtin_lot(), "shipment": "S2", "quantity": 60, "receiver": ledger.did("R")}
    ledger.tx("D", "ship", {**ship2, "serials": SERIALS[30:40]}, NOW - 4000)
    ledger.tx("R", "receive", {"shipment": "S2", "quantity": 60}, NOW - 3000)
    return ledger


def test_a_packed_shipment_is_packed_before_shipping_and_unpacked_at_receive() -> None:
    ledger = packed_chain()
    found = ledger.events("M", ("L1",))
    valid(epcis.document(found, LATER))
    steps = [(e.body["type"], e.body.get("bizStep")) for e in found]
    assert (
        steps[2:]
        == [
            ("AggregationEvent", "packing"),
            ("ObjectEvent", "shipping"),
            ("ObjectEvent", "receiving"),
            ("AggregationEvent", "unpacking"),
        ]
        * 2
    )
    packed, _, _, unpacked = (e.body for e in found[2:6])
    assert packed["action"] == "ADD" and packed["disposition"] == "in_progress"
    assert packed["parentID"] == f"https://id.gs1.org/00/{SSCC}"
    assert packed["childEPCs"] == [pack_uri(s) for s in SERIALS[:30]]  # as signed
    assert packed["readPoint"] == {"id": ledger.did("M")}
    assert packed["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:pharmasync:shipment:S1"}
    ]
    assert unpacked["action"] == "DELETE" and unpacked["childEPCs"] == packed["childEPCs"]
    assert unpacked["parentID"] == packed["parentID"]
    assert unpacked["bizLocation"] == {"id": ledger.did("D")}
    assert found[2].time == found[3].time - 1 and found[5].time == found[4].time + 1
    no_sscc = found[6].body
    assert no_sscc["parentID"] == "urn:pharmasync:shipment:S2"  # the shipment is the unit
    # MATCH_epc names a pack in childEPCs
    query = epcis_query.parse({"MATCH_epc": [pack_uri(SERIALS[35])]})
    matched = [e.body["bizStep"] for e in found if query.matches(e)]
    assert matched == ["commissioning", "packing", "unpacking"]


@pytest.mark.parametrize(
    ("reader", "shipments"),
    [
        ("M", ["S1", "S1", "S2", "S2"]),  # every flow, product yes
        ("D", ["S1", "S1", "S2", "S2"]),
        ("R", ["S2", "S2"]),  # M→D no: no packing of S1, as no shipping event of it
        ("regulator", []),  # product global only, no flow
        (None, []),  # the public
    ],
)
def test_a_packing_only_to_readers_of_its_leg_and_of_the_product_in_full(
    reader: str | None, shipments: list[str]
) -> None:
    found = packed_chain().events(reader, ("L1",))
    valid(epcis.document(found, LATER))
    aggregations = [e.body for e in found if e.body["type"] == "AggregationEvent"]
    named = [b["bizTransactionList"][0]["bizTransaction"].rsplit(":", 1)[1] for b in aggregations]
    assert named == shipments
    shipped = {
        e.body["bizTransactionList"][0]["bizTransaction"].rsplit(":", 1)[1]
        for e in found
        if e.body.get("bizStep") == "shipping"
    }
    assert set(named) <= shipped  # never a packing of a leg the reader does not see


# -- EPC URNs where the manufacturer registered its GS1 company prefix

LOT_URN = "urn:epc:class:lgtin:9506000.013435.L1"  # GTIN 09506000134352: GCP 9506000


def pack_urn(serial: str) -> str:
    return f"urn:epc:id:sgtin:9506000.013435.{serial}"


def test_urns_are_read_where_the_company_prefix_is_registered() -> None:
    ledger = packed_chain()
    found = ledger.events("M", ("L1",))
    state = ledger.world.state
    urns = partial(gs1_prefixes.split_refused, state)
    with pytest.raises(epcis_query.QueryError, match="9506000 is not registered") as refused:
        epcis_query.parse({"MATCH_epc": [pack_urn(SERIALS[35])]}, urns)
    assert refused.value.reason == "MATCH_epc" and refused.value.status == 400
    ledger.tx("M", "gs1-prefix", {"prefixes": ["9506000"]}, NOW)
    for name, urn, uri in (
        ("MATCH_epc", pack_urn(SERIALS[35]), pack_uri(SERIALS[35])),
        ("MATCH_anyEPC", pack_urn(SERIALS[5]), pack_uri(SERIALS[5])),
        ("MATCH_epc", LOT_URN, epcis.lot_uri(GTIN, "L1")),
        ("MATCH_epcClass", LOT_URN, epcis.lot_uri(GTIN, "L1")),
    ):
        by_urn = epcis_query.parse({name: [urn]}, urns)
        by_uri = epcis_query.parse({name: [uri]}, urns)
        matched = [e.event_id for e in found if by_urn.matches(e)]
        assert matched and matched == [e.event_id for e in found if by_uri.matches(e)], name
    for urn, says in (
        ("urn:epc:id:sgtin:950600.0013435.PK00001", "not the registered company prefix 9506000"),
        ("urn:epc:id:sgtin:0614141.812345.6789", "0614141 is not registered"),
        ("urn:epc:id:sscc:0614141.1234567890", r"want an SGTIN \(a pack\) or LGTIN"),
        ("urn:epc:id:sgtin:9506000.013435", "want 3 parts"),
    ):
        with pytest.raises(epcis_query.QueryError, match=says):
            epcis_query.parse({"MATCH_anyEPC": [urn]}, urns)
    with pytest.raises(epcis_query.QueryError, match="want a GS1 Digital Link URI"):
        epcis_query.parse({"MATCH_epc": [LOT_URN]})  # a caller that knows no prefixes


def test_always_epc_urn_writes_urns_where_the_prefix_is_known() -> None:
    ledger = packed_chain()
    ledger.tx("M", "gs1-prefix", {"prefixes": ["9506000"]}, NOW)
    document = epcis.document(ledger.events("M", ("L1",)), LATER)
    state = ledger.world.state
    urns = epcis_format.rewrite(document, partial(gs1_prefixes.prefix_of, state))
    valid(urns)
    assert document["epcisBody"]["eventList"][0]["quantityList"][0]["epcClass"].startswith(
        "https://"
    )  # the argument is left as it was
    events = urns["epcisBody"]["eventList"]
    assert [e["eventID"] for e in events] == [
        e["eventID"] for e in document["epcisBody"]["eventList"]
    ]
    assert events[0]["quantityList"][0]["epcClass"] == LOT_URN
    packed = next(e for e in events if e["type"] == "AggregationEvent")
    assert packed["childEPCs"][:2] == [pack_urn(SERIALS[0]), pack_urn(SERIALS[1])]
    assert packed["parentID"] == f"https://id.gs1.org/00/{SSCC}"  # GCP 0614141: not known
    assert "A%2FB%251" in json.dumps(events)  # the escaped serial of the commissioning
    ledger.tx("M2", "gs1-prefix", {"prefixes": ["0614141"]}, NOW + 1)
    again = epcis_format.rewrite(document, partial(gs1_prefixes.prefix_of, ledger.world.state))
    packed = next(e for e in again["epcisBody"]["eventList"] if e["type"] == "AggregationEvent")
    assert packed["parentID"] == "urn:epc:id:sscc:0614141.1123456789"
    assert epcis_format.preference(None) == epcis_format.NO_PREFERENCE
    with pytest.raises(ValueError, match="Always_EPC_URN"):
        epcis_format.preference("Always_URN")


def test_a_captured_statement_may_name_the_lot_by_its_urn() -> None:
    ledger = packed_chain()
    state = ledger.world.state
    shipping = next(
        e.body for e in ledger.events("D", ("L1",)) if e.body.get("bizStep") == "shipping"
    )
    stated = {**shipping, "quantityList": [{"epcClass": LOT_URN, "quantity": 101}]}
    d_id = participants.current(state, ledger.world.parties["D"].xonly)["id"]
    times = {"ship:S1": NOW - 6000}
    found = epcis_statement.check_events(state, GTIN, "L1", d_id, [stated], times)
    assert found is not None and found.field == "quantityList"
    assert "9506000 is not registered" in found.detail
    ledger.tx("M", "gs1-prefix", {"prefixes": ["9506000"]}, NOW)
    assert epcis_statement.check_events(state, GTIN, "L1", d_id, [stated], times) is None
    wrong = {**stated, "quantityList": [{"epcClass": "urn:epc:class:lgtin:950600.0013435.L1"}]}
    found = epcis_statement.check_events(state, GTIN, "L1", d_id, [wrong], times)
    assert found is not None and "not the registered company prefix" in found.detail

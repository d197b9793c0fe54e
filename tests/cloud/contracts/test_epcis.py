"""EPCIS 2.0 events of a lot (cloud/contracts/epcis.py), the query parameters
(epcis_query.py) and a partner's statement (epcis_statement.py), pure: a supply chain
applied with the real engine and cold chains, each event kind checked, every document valid
against GS1's EPCIS 2.0 JSON Schema (../shared/vectors/epcis), and what each reader sees
following the access matrix."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts import (
    epcis,
    epcis_query,
    epcis_statement,
    lots,
    lots_coldchain,
    participants,
)
from cloud.contracts.epcis import EventIndex, LedgerTx, Reader
from cloud.contracts.lots_coldchain import BoxReading, ColdChains
from tests.cloud.api.test_epcis import valid
from tests.cloud.contracts.test_lots_coldchain import BOX, CALM, HIGH, NOW, NOW_S
from tests.cloud.contracts.world import GTIN, World, supply_chain

LATER = NOW + 10_000_000


class Ledger:
    """A supply chain applied as the ledger does (each transaction, then the cold chains;
    reading batches), every change fed to an EventIndex, the bodies kept by log index."""

    def __init__(self) -> None:
        self.world: World = supply_chain()
        self.chains = ColdChains()
        self.index = EventIndex()
        self.txs: dict[int, LedgerTx] = {}
        self.at = 100

    def tx(self, who: str, tx_type: str, args: dict[str, Any], time_ms: int) -> None:
        signed = self.world.sign(who, "lots", tx_type, args, time_ms=time_ms)
        applied = self.world.apply(signed)
        self.at += 1
        body = signed.body
        self.txs[self.at] = LedgerTx(
            self.at, signed.id, body.type, body.time, body.signer, body.args
        )
        self.index.apply(self.at, applied)
        self.index.apply(self.at, self.chains.after_transactions(self.world.state, [applied]))

    def readings(self, batch: list[BoxReading]) -> None:
        self.at += 1
        self.index.apply(self.at, self.chains.apply_readings(self.world.state, batch))

    def did(self, name: str) -> str:
        return self.world.parties[name].did

    def reader(self, name: str | None) -> Reader:
        if name is None:
            return Reader("public")
        state = self.world.state
        who = participants.identify(state, self.did(name))
        return Reader(who.role, who.id, partial(lots.involved, state))

    def events(
        self, name: str | None, family: tuple[str, ...] = ("L1", "L1-A", "L1-B"), now: int = LATER
    ) -> list[epcis.Event]:
        state, out = self.world.state, []
        for lot in family:
            history = partial(lots_coldchain.history, state, self.chains, GTIN, lot)
            ledger = self.index.ledger(GTIN, lot, self.txs, history)
            out += epcis.events_of(state, ledger, self.reader(name), now)
        return epcis.merge(out)


def chain() -> Ledger:
    """M commissions L1 (100) and ships it to D (S1) with BOX on it; the readings
    quarantine it; D receives, holds it (damage), M releases it; D ships 60 to R (S2, order
    PO-1), R receives and splits them (L1-A 40, L1-B 20), ships L1-A to P (S3), P receives
    and dispenses 5; the regulator recalls L1."""
    ledger = Ledger()
    ledger.tx("M", "commission", commission_args(), NOW - 5000)
    ledger.world.state.boxes[BOX.xonly] = ledger.world.parties["M"].xonly
    ship = {"gtin": GTIN, "lot": "L1", "shipment": "S1", "quantity": 100}
    ledger.tx("M", "ship", {**ship, "receiver": ledger.did("D")}, NOW - 1000)
    attach = {"box": BOX.xonly.hex(), "shipment": "S1", "start": NOW, "end": None}
    ledger.tx("M", "attach", attach, NOW)
    ledger.readings([(BOX.xonly, NOW_S + 60 * i, CALM, 4000) for i in range(10)])
    ledger.readings([(BOX.xonly, NOW_S + 600 + 60 * i, HIGH, 6500) for i in range(20)])
    ledger.tx("D", "receive", {"shipment": "S1", "quantity": 100}, NOW + 3_000_000)
    hold = {"gtin": GTIN, "lot": "L1", "kind": "damage", "reason": "crushed box"}
    release = {**gtin_lot(), "outcome": "released", "reason": "ok"}
    ledger.tx("M", "dispose", release, NOW + 3_100_000)
    ledger.tx("D", "hold", hold, NOW + 3_200_000)
    ledger.tx("M", "dispose", release, NOW + 3_300_000)
    ship2 = {"gtin": GTIN, "lot": "L1", "shipment": "S2", "quantity": 60, "order_ref": "PO-1"}
    ledger.tx("D", "ship", {**ship2, "receiver": ledger.did("R")}, NOW + 4_000_000)
    ledger.tx("R", "receive", {"shipment": "S2", "quantity": 60}, NOW + 5_000_000)
    children = [{"lot": "L1-A", "quantity": 40}, {"lot": "L1-B", "quantity": 20}]
    ledger.tx("R", "split", {**gtin_lot(), "children": children}, NOW + 6_000_000)
    ship3 = {"gtin": GTIN, "lot": "L1-A", "shipment": "S3", "quantity": 40}
    ledger.tx("R", "ship", {**ship3, "receiver": ledger.did("P")}, NOW + 7_000_000)
    ledger.tx("P", "receive", {"shipment": "S3", "quantity": 40}, NOW + 8_000_000)
    ledger.tx("P", "dispense", {"gtin": GTIN, "lot": "L1-A", "quantity": 5}, NOW + 9_000_000)
    recall = {**gtin_lot(), "class": "I", "reason": "contamination"}
    ledger.tx("regulator", "recall", recall, NOW + 9_500_000)
    return ledger


def gtin_lot(lot: str = "L1") -> dict[str, str]:
    return {"gtin": GTIN, "lot": lot}


def commission_args() -> dict[str, Any]:
    from tests.cloud.contracts.world import PROFILE

    return {**gtin_lot(), "expiry": "271200", "quantity": 100, "unit": "pack", "profile": PROFILE}


def kinds(found: list[epcis.Event]) -> list[tuple[str, Any, Any]]:
    return [(e.body["type"], e.body.get("bizStep"), e.body.get("disposition")) for e in found]


def test_each_event_kind_from_the_ledger_and_the_aggregates() -> None:
    ledger = chain()
    found = ledger.events("M")
    valid(epcis.document(found, LATER))
    assert sorted(kinds(found), key=str) == sorted(
        [
            ("ObjectEvent", "commissioning", "active"),
            ("ObjectEvent", "shipping", "in_transit"),
            ("ObjectEvent", "inspecting", "non_sellable_other"),  # the readings' quarantine
            ("ObjectEvent", "receiving", "in_progress"),
            ("ObjectEvent", "sensor_reporting", None),  # S1's leg ended at the receive
            ("ObjectEvent", "inspecting", "sellable_accessible"),
            ("ObjectEvent", "inspecting", "damaged"),
            ("ObjectEvent", "inspecting", "sellable_accessible"),
            ("ObjectEvent", "shipping", "in_transit"),
            ("ObjectEvent", "receiving", "in_progress"),
            ("TransformationEvent", "repackaging", "active"),
            ("ObjectEvent", "shipping", "in_transit"),
            ("ObjectEvent", "receiving", "in_progress"),
            ("ObjectEvent", "dispensing", "dispensed"),
            ("ObjectEvent", None, "recalled"),
            ("ObjectEvent", None, "recalled"),
            ("ObjectEvent", None, "recalled"),
        ],
        key=str,
    )
    times = [e.time for e in found]
    assert times == sorted(times) and found[0].body["eventTime"].endswith("Z")
    assert found[0].body["eventTime"] == epcis.iso_time(NOW - 5000)
    assert [k[1] for k in kinds(found)[:3]] == ["commissioning", "shipping", "inspecting"]
    (event,) = [e for e in found if e.body.get("bizStep") == "sensor_reporting"]
    assert event.time == NOW + 3_000_000  # the leg ended with its shipment's receive
    sensor = event.body["sensorElementList"][0]
    figures, humidity, high = sensor["sensorReport"][:3]
    assert (figures["minValue"], figures["maxValue"]) == (5.0, 10.0)
    assert humidity == {
        "type": "RelativeHumidity", "uom": "P1",
        "minValue": 40.0, "maxValue": 65.0, "meanValue": 56.67,
    }  # fmt: skip
    assert (high["exception"], high["value"]) == ("ALARM_CONDITION", 10.0)
    assert high["time"] == epcis.iso_time((NOW_S + 600 + 900) * 1000)
    assert sensor["sensorMetadata"]["startTime"] == epcis.iso_time(NOW)
    s2 = next(e for e in found if "shipment:S2" in json.dumps(e.body))
    (order,) = [e for e in s2.body["bizTransactionList"] if e["type"] == "po"]
    assert order["bizTransaction"] == "urn:pharmasync:order:PO-1"
    assert found[-1].body["quantityList"] == [{"epcClass": epcis.lot_uri(GTIN, "L1-B")}]


def test_an_expired_lot_gets_its_expiry_event_once_the_day_is_over() -> None:
    ledger = chain()
    day_after = 1_830_297_600_000  # 2028-01-01T00:00:00Z: the lot expired on 2027-12-31
    assert "expired" not in [k[2] for k in kinds(ledger.events(None, ("L1",), day_after - 1))]
    found = ledger.events(None, ("L1",), day_after)
    (expired,) = [e for e in found if e.body.get("disposition") == "expired"]
    assert expired.time == day_after


@pytest.mark.parametrize(
    ("reader", "shipments", "sensor", "split"),
    [
        ("M", {"S1", "S2", "S3"}, True, True),  # every cell yes
        ("D", {"S1", "S2", "S3"}, True, True),  # every leg yes, quality if involved (it is)
        ("R", {"S2", "S3"}, True, True),  # M→D is no for a retailer
        ("P", {"S3"}, True, True),  # R→P only
        ("P2", {"S3"}, False, True),  # R→P yes, but not in the chain: no cold chain
        ("regulator", set(), True, False),  # no leg; quality yes; product global only
        (None, set(), False, False),  # the public: public records
    ],
)
def test_what_each_reader_sees_follows_the_access_matrix(
    reader: str | None, shipments: set[str], sensor: bool, split: bool
) -> None:
    ledger = chain()
    found = ledger.events(reader)
    valid(epcis.document(found, LATER))
    text = json.dumps([e.body for e in found])
    named = {s for s in ("S1", "S2", "S3") if f"urn:pharmasync:shipment:{s}" in text}
    assert named == shipments
    assert ("sensor_reporting" in text) is sensor
    assert ("TransformationEvent" in text) is split
    assert ("urn:pharmasync:order:" in text) is (reader in ("M", "D", "R"))
    custody = reader not in (None, "regulator", "P2")
    assert ('"quantity"' in text) is custody
    for step in ("commissioning", "recalled", "non_sellable_other"):  # public records
        assert step in text
    if reader is None:
        for name in ("D", "R", "P"):
            assert ledger.did(name) not in text


def test_event_ids_name_one_fact_whoever_reads() -> None:
    ledger = chain()
    full = {e.event_id: e for e in ledger.events("M")}
    for reader in ("R", None):
        for e in ledger.events(reader):
            assert e.event_id in full  # the same fact, the same eventID
    assert epcis.event_id("a") != epcis.event_id("b")
    assert epcis.event_id("a").startswith("urn:uuid:") and epcis.event_id("a")[23] == "8"


def test_digital_link_uris_and_what_a_query_may_name() -> None:
    assert epcis.lot_uri(GTIN, "A/B 1") == f"https://id.gs1.org/01/{GTIN}/10/A%2FB%201"
    assert epcis.match_uri(epcis.lot_uri(GTIN, "A/B")) == epcis.Epc(GTIN, "A/B")
    assert epcis.match_uri("https://example.com/01/9506000134352/10/L1") == epcis.Epc(GTIN, "L1")
    assert epcis.match_uri(epcis.serial_uri(GTIN, "S9")) == epcis.Epc(GTIN, None, "S9")
    for bad in (
        "urn:epc:class:lgtin:4012345.012345.998877",  # needs the company prefix length
        f"https://id.gs1.org/01/{GTIN}",  # no lot, no serial
        "https://id.gs1.org/01/09506000134353/10/L1",  # a wrong check digit
        f"https://id.gs1.org/01/{GTIN}/99/L1",  # not a key qualifier
        f"ftp://id.gs1.org/01/{GTIN}/10/L1",
        f"http://[::1/01/{GTIN}/10/L1",  # urlsplit's own ValueError
    ):
        with pytest.raises(epcis.EpcError):
            epcis.match_uri(bad)


def test_query_parameters_match_and_page() -> None:
    ledger = chain()
    found = ledger.events("M")
    q = epcis_query.parse({"EQ_bizStep": ["shipping|urn:epcglobal:cbv:bizstep:receiving"]})
    assert {k[1] for k in kinds([e for e in found if q.matches(e)])} == {"shipping", "receiving"}
    child = epcis.lot_uri(GTIN, "L1-A")
    assert epcis_query.parse({"MATCH_epc": [child]}).lots() == {(GTIN, "L1-A")}
    anyepc = [e for e in found if epcis_query.parse({"MATCH_anyEPC": [child]}).matches(e)]
    assert "TransformationEvent" in {k[0] for k in kinds(anyepc)}
    only = [e for e in found if epcis_query.parse({"MATCH_epc": [child]}).matches(e)]
    assert "TransformationEvent" not in {k[0] for k in kinds(only)}
    q = epcis_query.parse({"perPage": ["5"]})
    pages, cursor = [], None
    while True:
        shown, cursor = epcis_query.page(found, q)
        pages.append(shown)
        if cursor is None:
            break
        q = epcis_query.parse({"perPage": ["5"], "nextPageToken": [cursor.token()]})
    assert [len(p) for p in pages] == [5, 5, 5, 2]
    assert [e for p in pages for e in p] == found
    for params, param in (
        ({"perPage": ["1001"]}, "perPage"),
        ({"GE_eventTime": ["2026-13-01T00:00:00Z"]}, "GE_eventTime"),
        ({"EQ_action": ["ADD"]}, "EQ_action"),
        ({"MATCH_epcClass": [epcis.serial_uri(GTIN, "1")]}, "MATCH_epcClass"),
        ({"EQ_bizStep": ["a|"]}, "EQ_bizStep"),
        ({"EQ_bizStep": ["a", "b"]}, "EQ_bizStep"),
        ({"nextPageToken": ["MTIzLmZvbw"]}, "nextPageToken"),  # "123.foo"
    ):
        with pytest.raises(epcis_query.QueryError) as info:
            epcis_query.parse(params)
        assert info.value.reason == param and info.value.status == 400


def test_a_statement_is_checked_event_by_event_against_the_ledger() -> None:
    ledger = chain()
    mine = [e.body for e in ledger.events("D") if e.body.get("bizStep") == "shipping"]
    s1 = next(e for e in mine if "shipment:S1" in json.dumps(e))
    state = ledger.world.state
    d_id = participants.current(state, ledger.world.parties["D"].xonly)["id"]
    times = {"ship:S1": NOW - 1000, "receive:S1": NOW + 3_000_000}
    assert epcis_statement.check_events(state, GTIN, "L1", d_id, [s1], times) is None
    cases: list[tuple[dict[str, Any], str]] = [
        ({**s1, "quantityList": [{"epcClass": epcis.lot_uri(GTIN, "L1"), "quantity": 99}]},
         "quantity"),
        ({**s1, "bizStep": "packing"}, "bizStep"),
        ({**s1, "bizTransactionList": []}, "bizTransactionList"),
        ({**s1, "sourceList": [{"type": "owning_party", "source": ledger.did("R")}]},
         "sourceList"),
        ({**s1, "eventTime": epcis.iso_time(NOW + 3_600_000)}, "eventTime"),
        ({**s1, "type": "AggregationEvent"}, "type"),
        ({**s1, "quantityList": [{"epcClass": epcis.lot_uri(GTIN, "L1-A")}]}, "quantityList"),
    ]  # fmt: skip
    for event, field in cases:
        found = epcis_statement.check_events(state, GTIN, "L1", d_id, [s1, event], times)
        assert found is not None and (found.position, found.field) == (1, field), found
        assert str(found).startswith(f"event 1 ({event['eventID']}): {field}")
    r_id = participants.current(state, ledger.world.parties["R"].xonly)["id"]
    found = epcis_statement.check_events(state, GTIN, "L1", r_id, [s1], times)
    assert found is not None and found.field == "shipment"  # R is no party to S1
    unknown = {**s1, "bizTransactionList": [{"bizTransaction": "urn:pharmasync:shipment:S9"}]}
    other = epcis_statement.check_events(state, GTIN, "L1", d_id, [unknown], times)
    assert other is not None and other.detail.endswith(found.detail.split("'", 2)[2])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from((*epcis_query.PARAMETERS, "EQ_action", "x")),
        st.lists(
            st.text(max_size=60)
            | st.sampled_from(("http://[", "https://id.gs1.org/01/", "/10/", "|", "urn:epc:"))
            | st.builds(
                "".join,
                st.lists(
                    st.sampled_from(
                        (
                            "https://",
                            "[",
                            "id.gs1.org",
                            "/01/",
                            GTIN,
                            "/10/",
                            "/21/",
                            "L1",
                            "%",
                            "|",
                        )
                    ),
                    max_size=8,
                ),
            ),
            min_size=1,
            max_size=2,
        ),
        max_size=4,
    )
)
def test_any_query_string_is_parsed_or_refused_naming_its_parameter(
    params: dict[str, list[str]],
) -> None:
    try:
        query = epcis_query.parse(params)
    except epcis_query.QueryError as e:
        assert e.reason in params and e.status == 400
        return
    assert 1 <= query.per_page <= epcis_query.MAX_PER_PAGE


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON_VALUES | st.dictionaries(st.sampled_from(
    ("type", "bizStep", "bizTransactionList", "quantityList", "sourceList", "destinationList",
     "eventTime", "eventID")), JSON_VALUES, max_size=8), min_size=1, max_size=3))  # fmt: skip
def test_any_partner_event_is_checked_without_failing(events: list[Any]) -> None:
    ledger = CHAIN
    state = ledger.world.state
    d_id = participants.identify(state, ledger.did("D")).id
    found = epcis_statement.check_events(state, GTIN, "L1", d_id, events, {})
    assert found is not None and 0 <= found.position < len(events)  # none agrees by chance
    str(found)


CHAIN = chain()  # one supply chain for the property tests (they only read it)


def test_the_schema_check_is_not_vacuous() -> None:
    """GS1's own examples beside the schema pass it; our document with a field broken does
    not (so `valid` can fail)."""
    from tests.cloud.api.test_epcis import SCHEMA_FILE, validator

    check = validator()
    for example in sorted(SCHEMA_FILE.parent.glob("*.jsonld")):
        assert not list(check.iter_errors(json.loads(example.read_text()))), example.name
    document = epcis.document(CHAIN.events("M"), LATER)
    assert not list(check.iter_errors(document))
    broken = json.loads(json.dumps(document))
    broken["epcisBody"]["eventList"][0]["action"] = "CREATE"  # not ADD, OBSERVE or DELETE
    assert list(check.iter_errors(broken))
    del broken["schemaVersion"]
    assert len(list(check.iter_errors(broken))) >= 2

"""Serialized packs (cloud/contracts/packs.py, pack_facts.py, pack_index.py): serialize, a
split naming each child's packs, decommission, undo, suspect reports and their alerts, the
counter's verdicts, every refusal leaving nothing (the serial index included), and replay
reaching the same roots and the same index."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts import engine, lots, pack_facts, packs, participants
from cloud.contracts.didkey import from_point
from cloud.contracts.feeds import Feeds, owner_of
from cloud.contracts.pack_index import Registration, SerialIndex
from cloud.contracts.statetree_proof import verify_proof
from gateway import merkle
from gateway.merkle_verify import verify_inclusion
from tests.cloud.contracts.world import GTIN, REGULATOR, T0, World, supply_chain

DAY = 86_400_000
SERIALS = [f"S{i:04d}" for i in range(1, 101)]


def serials(*numbers: int) -> list[str]:
    return [f"S{i:04d}" for i in numbers]


def pid(world: World, who: str) -> str:
    return participants.identify(world.state, world.parties[who].did).id


def held(world: World, lot: str, who: str) -> int:
    record = world.state.get(lots.HOLDING, GTIN, lot, pid(world, who))
    return 0 if record is None else int(record["quantity"])


def refused(world: World, who: str, tx_type: str, args: dict[str, Any]) -> tuple[int, str]:
    before = world.state.packs.serials  # type: ignore[union-attr]
    error = world.refused(who, "lots", tx_type, args)
    assert world.state.packs.serials == before  # type: ignore[union-attr]
    return error.status, error.reason


def to_pharmacy(world: World, lot: str, quantity: int, pharmacy: str = "P") -> None:
    """Move `quantity` units of `lot` M → D → R → pharmacy."""
    n = len(world.log)
    world.ship("M", lot, f"m{n}", "D", quantity)
    world.receive("D", f"m{n}", quantity)
    to_pharmacy_from(world, "D", lot, quantity, pharmacy)


def to_pharmacy_from(
    world: World, holder: str, lot: str, quantity: int, pharmacy: str = "P"
) -> None:
    """Move `quantity` units of `lot` from distributor `holder` → R → pharmacy."""
    n = len(world.log)
    world.ship(holder, lot, f"d{n}", "R", quantity)
    world.receive("R", f"d{n}", quantity)
    world.ship("R", lot, f"r{n}", pharmacy, quantity)
    world.receive(pharmacy, f"r{n}", quantity)


@pytest.fixture
def world() -> World:
    chain = supply_chain()
    chain.commission("M", "L1", 100)
    chain.lots("M", "serialize", {"gtin": GTIN, "lot": "L1", "serials": SERIALS[:60]})
    chain.lots("M", "serialize", {"gtin": GTIN, "lot": "L1", "serials": SERIALS[60:]})
    to_pharmacy(chain, "L1", 10)
    return chain


def decommission(world: World, serial: str, status: str = "dispensed", who: str = "P") -> None:
    world.lots(who, "decommission", {"gtin": GTIN, "serial": serial, "status": status})


# -- serialize


def test_serialize_writes_one_registration_record_with_the_sorted_serials_root(
    world: World,
) -> None:
    first = world.state.get(packs.REGISTRATION, GTIN, "L1", "1")
    assert first is not None and first["count"] == 60
    assert first["root"] == merkle.root(s.encode() for s in sorted(SERIALS[:60])).hex()
    counts = world.state.get(packs.SERIALS, GTIN, "L1")
    assert counts is not None and counts["registrations"] == 2 and counts["registered"] == 100
    assert world.state.get(packs.PACK, GTIN, "S0001") is None  # no record per serial
    assert world.state.record(packs.REGISTRATION, GTIN, "L1", "1").salt is None  # type: ignore[union-attr]
    assert world.state.record(packs.SERIALS, GTIN, "L1").salt is not None  # type: ignore[union-attr]


def test_serialize_root_does_not_depend_on_the_order_given() -> None:
    a, b = supply_chain(), supply_chain()
    for w, order in ((a, SERIALS[:5]), (b, SERIALS[:5][::-1])):
        w.commission("M", "L1", 10)
        w.lots("M", "serialize", {"gtin": GTIN, "lot": "L1", "serials": order})
    first, second = (w.state.get(packs.REGISTRATION, GTIN, "L1", "1") for w in (a, b))
    assert first is not None and second is not None and first["root"] == second["root"]


@pytest.mark.parametrize(
    ("who", "args", "want"),
    [
        ("M", {"gtin": GTIN, "lot": "L2", "serials": ["X1"]}, (409, "lot")),
        ("M", {"gtin": GTIN, "lot": "L9", "serials": ["S0001"]}, (409, "lot")),
        ("M2", {"gtin": GTIN, "lot": "L1", "serials": ["X1"]}, (403, "role")),
        ("D", {"gtin": GTIN, "lot": "L1", "serials": ["X1"]}, (403, "access")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": []}, (400, "args.serials")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": "S1"}, (400, "args.serials")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": ["A", "A"]}, (400, "args.serials[1]")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": ["A", "x" * 21]}, (400, "args.serials[1]")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": ["A b"]}, (400, "args.serials[0]")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": ["A", 7]}, (400, "args.serials[1]")),
        ("M", {"gtin": GTIN, "lot": "L1", "serials": ["A"], "x": 1}, (400, "args")),
        ("M", {"gtin": "09506000134353", "lot": "L1", "serials": ["A"]}, (400, "args.gtin")),
    ],
)
def test_serialize_refusals(world: World, who: str, args: dict[str, Any], want: Any) -> None:
    assert refused(world, who, "serialize", args) == want


def test_a_serial_is_unique_per_gtin_across_lots_and_the_first_clash_is_named(
    world: World,
) -> None:
    world.commission("M", "L2", 100)
    error = world.refused(
        "M", "lots", "serialize", {"gtin": GTIN, "lot": "L2", "serials": ["NEW1", "S0061", "S0001"]}
    )
    assert (error.status, error.reason) == (409, "serial")
    assert "S0061" in error.detail and "lot L1" in error.detail
    # the same serial of another GTIN is another pack
    other = "09506000134369"
    world.commission("M", "L2", 5, gtin=other)
    world.lots("M", "serialize", {"gtin": other, "lot": "L2", "serials": ["S0001"]})
    facts = pack_facts.pack(world.state, other, "S0001")
    assert facts is not None and facts.registered_lot == "L2"


def test_serialize_refuses_more_serials_than_the_lot_has_units(world: World) -> None:
    world.commission("M", "L2", 3)
    args = {"gtin": GTIN, "lot": "L2", "serials": ["A", "B", "C", "D"]}
    assert refused(world, "M", "serialize", args) == (409, "quantity")
    assert refused(world, "M", "serialize", {**args, "serials": ["S0001"]}) == (409, "serial")


# -- facts and proofs


def test_pack_facts_and_the_proof_keys_a_verifier_recomputes(world: World) -> None:
    facts = pack_facts.pack(world.state, GTIN, "S0075")
    assert facts is not None
    assert (facts.registered_lot, facts.registration, facts.lot) == ("L1", 2, "L1")
    assert (facts.status, facts.expiry, facts.quality, facts.recall) == (
        "active",
        "2027-12-31",
        "released",
        None,
    )
    assert pack_facts.pack(world.state, GTIN, "NOPE") is None
    keys = pack_facts.pack_proof_keys(world.state, GTIN, "S0075")
    assert keys[0] == (packs.REGISTRATION, (GTIN, "L1", "2"))
    root = world.state.root
    for rtype, fields in keys:
        value, proof = world.state.prove(rtype, *fields)
        verify_proof(root, rtype.key(*fields), value, proof)
    registration = world.state.get(packs.REGISTRATION, GTIN, "L1", "2")
    assert registration is not None
    proof = pack_facts.serial_proof(world.state, GTIN, "S0075")
    assert proof is not None and proof.size == 40
    verify_inclusion(
        b"S0075", proof.index, proof.size, proof.path, bytes.fromhex(registration["root"])
    )
    value, _ = world.state.prove(packs.PACK, GTIN, "S0075")
    assert value is None  # active in its registered lot: proven absent


# -- decommission and undo


def test_decommission_dispensed_takes_the_unit_and_counts_a_dispense(world: World) -> None:
    decommission(world, "S0001")
    assert held(world, "L1", "P") == 9
    custody = world.state.get(lots.CUSTODY, GTIN, "L1")
    assert custody is not None and custody["dispensed"] == 1
    assert world.state.get(packs.PACK, GTIN, "S0001") == {"lot": "L1", "status": "dispensed"}
    done = world.state.get(packs.DECOMMISSION, GTIN, "S0001")
    assert done is not None and done["by"] == pid(world, "P") and done["status"] == "dispensed"
    facts = pack_facts.pack(world.state, GTIN, "S0001")
    assert facts is not None and facts.status == "dispensed" and facts.by == pid(world, "P")
    assert facts.since == world.log[-1][0].body.time


def test_a_second_decommission_is_refused_and_a_pharmacy_with_no_units_is_refused(
    world: World,
) -> None:
    decommission(world, "S0001")
    args = {"gtin": GTIN, "serial": "S0001", "status": "dispensed"}
    assert refused(world, "P", "decommission", args) == (409, "decommissioned")
    assert refused(world, "P2", "decommission", {**args, "serial": "S0002"}) == (409, "holder")
    assert refused(world, "P", "decommission", {**args, "serial": "ZZZ"}) == (409, "serial")
    assert refused(world, "R", "decommission", {**args, "serial": "S0002"}) == (403, "role")
    assert refused(world, "D", "decommission", {**args, "serial": "S0002"}) == (403, "access")
    assert refused(world, "P", "decommission", {**args, "status": "lost"}) == (
        400,
        "args.status",
    )
    assert refused(world, "P", "decommission", {**args, "serial": "a b"}) == (400, "args.serial")


def test_dispensing_a_recalled_quarantined_or_expired_pack_is_refused_destroying_is_not(
    world: World,
) -> None:
    args = {"gtin": GTIN, "serial": "S0002", "status": "dispensed"}
    world.lots("M", "hold", {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "check"})
    assert refused(world, "P", "decommission", args) == (409, "quarantined")
    world.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "II", "reason": "r"})
    assert refused(world, "P", "decommission", args) == (409, "recalled")
    assert refused(world, "P", "decommission", {**args, "status": "sample"}) == (409, "recalled")
    decommission(world, "S0002", "destroyed")
    assert held(world, "L1", "P") == 9


def test_expired_pack_cannot_be_dispensed() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10, expiry="261200")  # 2026-12-31; T0 is 2026-12-01
    world.lots("M", "serialize", {"gtin": GTIN, "lot": "L1", "serials": ["A", "B"]})
    to_pharmacy(world, "L1", 2)
    late = T0 + 40 * DAY
    signed = world.sign(
        "P",
        "lots",
        "decommission",
        {"gtin": GTIN, "serial": "A", "status": "dispensed"},
        time_ms=late,
    )
    assert world.refuse(signed).reason == "expired"
    verdict = pack_facts.check(world.state, GTIN, "A", "L1", "261200", late)
    assert verdict.code == "expired"


def test_undo_by_the_same_pharmacy_within_10_days_puts_the_pack_back(world: World) -> None:
    decommission(world, "S0001")
    world.lots("P", "undo", {"gtin": GTIN, "serial": "S0001"})
    assert held(world, "L1", "P") == 10
    custody = world.state.get(lots.CUSTODY, GTIN, "L1")
    assert custody is not None and custody["dispensed"] == 0
    assert world.state.get(packs.PACK, GTIN, "S0001") is None  # back to its registration
    assert world.state.get(packs.DECOMMISSION, GTIN, "S0001") is None
    counts = world.state.get(packs.SERIALS, GTIN, "L1")
    assert counts is not None and counts["decommissioned"] == 0
    decommission(world, "S0001")  # may be dispensed again


def test_undo_refusals(world: World) -> None:
    to_pharmacy(world, "L1", 5, pharmacy="P2")
    decommission(world, "S0001")
    decommission(world, "S0002", "stolen")
    args = {"gtin": GTIN, "serial": "S0001"}
    assert refused(world, "P2", "undo", args) == (403, "decommissioner")
    assert refused(world, "P", "undo", {**args, "serial": "S0002"}) == (409, "status")
    assert refused(world, "P", "undo", {**args, "serial": "S0003"}) == (409, "not decommissioned")
    assert refused(world, "P", "undo", {**args, "serial": "NOPE"}) == (409, "serial")
    late = world.log[-2][0].body.time + 10 * DAY + 1
    signed = world.sign("P", "lots", "undo", args, time_ms=late)
    assert world.refuse(signed).reason == "undo window"
    world.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "I", "reason": "r"})
    assert refused(world, "P", "undo", args) == (409, "recalled")


def test_the_undo_window_is_10_days_to_the_millisecond_inclusive(world: World) -> None:
    """EU 2016/161 Art. 13(1)(b), "within 10 days": an undo exactly 10 days after the
    decommission's own time is in the window, 1 ms later it is not; a second decommission
    restarts the window from its own time."""
    decommission(world, "S0001")
    decommission(world, "S0002")
    args = {"gtin": GTIN, "serial": "S0001"}
    at = world.log[-2][0].body.time
    late = world.sign(
        "P", "lots", "undo", {**args, "serial": "S0002"}, time_ms=at + 10 * DAY + 1001
    )
    assert world.refuse(late).reason == "undo window"
    world.apply(world.sign("P", "lots", "undo", args, time_ms=at + 10 * DAY))
    assert world.state.get(packs.DECOMMISSION, GTIN, "S0001") is None
    again = at + 10 * DAY + 5
    world.apply(
        world.sign("P", "lots", "decommission", {**args, "status": "sample"}, time_ms=again)
    )
    world.apply(world.sign("P", "lots", "undo", args, time_ms=again + 10 * DAY))


def test_undo_refused_for_a_rejected_lot(world: World) -> None:
    decommission(world, "S0001")
    world.lots("M", "hold", {"gtin": GTIN, "lot": "L1", "kind": "damage", "reason": "wet"})
    world.lots("M", "dispose", {"gtin": GTIN, "lot": "L1", "outcome": "rejected", "reason": "x"})
    assert refused(world, "P", "undo", {"gtin": GTIN, "serial": "S0001"}) == (409, "rejected")


# -- split


def test_split_of_a_serialized_lot_names_each_childs_packs(world: World) -> None:
    # D splits what it holds; to do so it must first hold something: ship 20 more to D
    world.ship("M", "L1", "m-more", "D", 20)
    world.receive("D", "m-more", 20)
    children = [{"lot": "C1", "quantity": 15}, {"lot": "C2", "quantity": 5}]
    given = {"C1": serials(*range(21, 36)), "C2": serials(*range(36, 41))}
    base = {"gtin": GTIN, "lot": "L1", "children": children}
    assert refused(world, "D", "split", base) == (400, "args.serials")
    assert refused(world, "D", "split", {**base, "serials": {"C1": given["C1"]}}) == (
        400,
        "args.serials",
    )
    short = {**given, "C2": given["C2"][:4]}
    assert refused(world, "D", "split", {**base, "serials": short}) == (400, "args.serials.C2")
    twice = {**given, "C2": [given["C1"][0], *given["C2"][1:]]}
    assert refused(world, "D", "split", {**base, "serials": twice}) == (400, "args.serials.C2")
    decommission(world, "S0001")
    gone = {**given, "C2": ["S0001", *given["C2"][1:]]}
    assert refused(world, "D", "split", {**base, "serials": gone}) == (409, "serial")
    world.lots("D", "split", {**base, "serials": given})
    facts = pack_facts.pack(world.state, GTIN, "S0025")
    assert facts is not None and (facts.registered_lot, facts.lot) == ("L1", "C1")
    assert world.state.get(packs.PACK, GTIN, "S0037") == {"lot": "C2", "status": "active"}
    c1 = world.state.get(packs.SERIALS, GTIN, "C1")
    assert c1 is not None and c1["moved_in"] == 15
    # a recall of the child answers for the packs in it, though their label says L1
    world.lots("M", "recall", {"gtin": GTIN, "lot": "C1", "class": "I", "reason": "r"})
    assert pack_facts.check(world.state, GTIN, "S0025", "L1", "271200", T0 + DAY).code == "recalled"
    assert (
        pack_facts.check(world.state, GTIN, "S0037", "L1", "271200", T0 + DAY).code == "authentic"
    )
    keys = pack_facts.pack_proof_keys(world.state, GTIN, "S0025")
    assert (lots.RECALL, (GTIN, "C1")) in keys
    # a pack of the other child reaches a pharmacy: decommissioned and undone in its lot
    to_pharmacy_from(world, "D", "C2", 5)
    args = {"gtin": GTIN, "serial": "S0037", "status": "dispensed"}
    assert refused(world, "P", "decommission", {**args, "serial": "S0025"}) == (409, "holder")
    world.lots("P", "decommission", args)
    assert world.state.get(packs.PACK, GTIN, "S0037") == {"lot": "C2", "status": "dispensed"}
    assert held(world, "C2", "P") == 4
    world.lots("P", "undo", {"gtin": GTIN, "serial": "S0037"})
    assert world.state.get(packs.PACK, GTIN, "S0037") == {"lot": "C2", "status": "active"}
    assert held(world, "C2", "P") == 5


def test_split_of_an_unserialized_lot_is_unchanged_and_refuses_serials() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10)
    children = [{"lot": "C1", "quantity": 10}]
    args = {"gtin": GTIN, "lot": "L1", "children": children}
    assert refused(world, "M", "split", {**args, "serials": {"C1": ["A"]}}) == (400, "args.serials")
    world.lots("M", "split", args)
    assert world.state.get(lots.LOT, GTIN, "C1") is not None


# -- the counter's verdict


def test_verdicts(world: World) -> None:
    now = T0 + DAY
    assert pack_facts.check(world.state, GTIN, "S0001", "L1", "271200", now).code == "authentic"
    assert pack_facts.check(world.state, GTIN, "S0001", "L1", "271231", now).code == "authentic"
    assert pack_facts.check(world.state, GTIN, "S0001", None, None, now).dispensable
    unknown = pack_facts.check(world.state, GTIN, "FAKE", "L1", "271200", now)
    assert unknown.code == "unknown" and unknown.suspect and unknown.facts is None
    assert pack_facts.check(world.state, GTIN, "S0001", "L9", "271200", now).code == "mismatch"
    assert pack_facts.check(world.state, GTIN, "S0001", "L1", "271130", now).code == "mismatch"
    decommission(world, "S0001")
    second = pack_facts.check(world.state, GTIN, "S0001", "L1", "271200", now)
    assert second.code == "decommissioned" and not second.dispensable
    assert second.facts is not None and second.facts.by == pid(world, "P")
    world.lots("M", "hold", {"gtin": GTIN, "lot": "L1", "kind": "hold", "reason": "c"})
    assert pack_facts.check(world.state, GTIN, "S0002", "L1", None, now).code == "quarantined"


# -- suspect reports and their alerts


def test_a_suspect_report_is_applied_and_alerts_the_manufacturer_and_the_regulator(
    world: World,
) -> None:
    decommission(world, "S0001")
    args = {"gtin": GTIN, "serial": "S0001", "status": "dispensed"}
    assert refused(world, "P", "decommission", args) == (409, "decommissioned")
    report = {
        "gtin": GTIN,
        "serial": "S0001",
        "reason": "decommissioned",
        "place": "Apotheke am Markt, Berlin",
        "lot": "L1",
        "expiry": "271200",
    }
    applied = world.lots("P", "suspect", report)
    record = world.state.get(packs.SUSPECT, applied.tx_id)
    assert record is not None and record["verdict"] == "decommissioned"
    assert record["by"] == pid(world, "P") and record["place"] == report["place"]
    told = {n.did: n.event for n in applied.notifications}
    maker = told[world.parties["M"].did]
    assert maker["type"] == "suspect" and maker["place"] == report["place"]
    assert maker["time"] == world.log[-1][0].body.time
    assert maker["pharmacy"] == world.parties["P"].did
    regulator = told[from_point(b"\x02" + REGULATOR.xonly)]
    assert "pharmacy" not in regulator and "by" not in regulator
    feeds = Feeds()
    feeds.add(world.state, 7, applied)
    assert feeds.last(owner_of(world.state, REGULATOR.did)) == 1


def test_an_unknown_serial_report_reaches_the_gtins_manufacturer(world: World) -> None:
    applied = world.lots(
        "P", "suspect", {"gtin": GTIN, "serial": "FAKE1", "reason": "unknown", "place": "x"}
    )
    assert world.parties["M"].did in {n.did for n in applied.notifications}
    record = world.state.get(packs.SUSPECT, applied.tx_id)
    assert record is not None and record["verdict"] == "unknown" and record["lot"] is None


def test_suspect_refusals(world: World) -> None:
    good = {"gtin": GTIN, "serial": "S1", "reason": "unknown", "place": "x"}
    assert refused(world, "R", "suspect", good) == (403, "role")
    assert refused(world, "P", "suspect", {**good, "reason": "bored"}) == (400, "args.reason")
    assert refused(world, "P", "suspect", {**good, "place": ""}) == (400, "args.place")
    assert refused(world, "P", "suspect", {**good, "expiry": "271300"}) == (400, "args.expiry")
    assert refused(world, "P", "suspect", {**good, "lot": "a b"}) == (400, "args.lot")


# -- replay and the index


def test_replay_reaches_the_same_roots_and_the_same_index(world: World) -> None:
    decommission(world, "S0001")
    world.lots("P", "undo", {"gtin": GTIN, "serial": "S0001"})
    world.lots("P", "suspect", {"gtin": GTIN, "serial": "X", "reason": "unknown", "place": "x"})
    fresh = engine.State([REGULATOR.xonly])
    roots = engine.replay(world.engine, world.log, [REGULATOR.xonly], fresh)
    assert roots == world.roots
    for serial in ("S0001", "S0100", "X"):
        assert pack_facts.pack(fresh, GTIN, serial) == pack_facts.pack(world.state, GTIN, serial)
    assert fresh.packs.serials == world.state.packs.serials == 100  # type: ignore[union-attr]


def test_index_finds_every_serial_and_survives_fingerprint_neighbours() -> None:
    index = SerialIndex()
    many = sorted(f"N{i}" for i in range(5000))
    index.add(Registration.of(GTIN, "L1", 1, many), "m")
    for i, serial in enumerate(many):
        found = index.find(GTIN, serial)
        assert found is not None and found.position == i
        assert found.registration.position(serial) == i
    assert index.find(GTIN, "N5000") is None
    assert index.find("09506000134369", "N1") is None
    overlay = index.overlay()
    overlay.add(Registration.of(GTIN, "L2", 1, ["Z"]), "m")
    assert overlay.find(GTIN, "Z") is not None and index.find(GTIN, "Z") is None
    overlay.commit()
    found = index.find(GTIN, "Z")
    assert found is not None and found.registration.lot == "L2"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.text(alphabet="AB!%09z_", min_size=1, max_size=4), max_size=30),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.text(alphabet="AB!%09z_", min_size=1, max_size=4), max_size=20),
)
def test_index_and_overlays_agree_with_a_dict(batches: list[list[str]], probes: list[str]) -> None:
    """Registrations (each batch's new serials, alternately of two GTINs) through nested
    overlays, some committed and one dropped: every lookup and first_known answers as a
    plain dict of what was committed would."""
    index = SerialIndex()
    fork = index.overlay()
    model: dict[tuple[str, str], tuple[str, int]] = {}
    gtins = (GTIN, "09506000134369")
    for n, batch in enumerate(batches):
        gtin = gtins[n % 2]
        fresh = sorted({s for s in batch if (gtin, s) not in model})
        if not fresh:
            continue
        ctx = fork.overlay()
        ctx.add(Registration.of(gtin, f"L{n}", 1, fresh), "m")
        if n % 3 == 2:
            continue  # a refused transaction: its overlay is dropped
        ctx.commit()
        model.update(((gtin, s), (f"L{n}", i)) for i, s in enumerate(fresh))
        if n % 2:
            fork.commit()  # a block merged
    fork.commit()
    for gtin in gtins:
        for probe in [*probes, *(s for g, s in model if g == gtin)]:
            found = index.find(gtin, probe)
            want = model.get((gtin, probe))
            got = None if found is None else (found.registration.lot, found.position)
            assert got == want
        known = index.first_known(gtin, probes)
        first = next((i for i, p in enumerate(probes) if (gtin, p) in model), None)
        assert (None if known is None else known[0]) == first


# -- a shipment naming its packs

SSCC = "106141411234567897"  # GS1's example SSCC: extension 1, GCP 0614141, check digit 7


def packed_ship(world: World, shipment: str, named: list[str], **more: Any) -> dict[str, Any]:
    args = {"gtin": GTIN, "lot": "L1", "shipment": shipment, "quantity": 20}
    return {**args, "receiver": world.parties["D"].did, "serials": named, **more}


def test_a_shipment_names_its_packs_and_its_logistic_unit(world: World) -> None:
    world.lots("M", "ship", packed_ship(world, "P1", serials(*range(20, 40)), sscc=SSCC))
    shipment = world.state.get(lots.SHIPMENT, "P1")
    assert shipment is not None
    assert (shipment[packs.PACKED], shipment[packs.SSCC]) == (20, SSCC)
    assert held(world, "L1", "M") == 70
    world.lots("M", "ship", packed_ship(world, "P2", serials(40), quantity=1))  # no SSCC
    assert world.state.get(lots.SHIPMENT, "P2")[packs.SSCC] is None  # type: ignore[index]
    world.ship("M", "L1", "P3", "D", 1)  # a ship naming no packs: its record as before
    assert packs.PACKED not in world.state.get(lots.SHIPMENT, "P3")  # type: ignore[operator]
    world.receive("D", "P1", 20)
    fresh = engine.State([REGULATOR.xonly])
    assert engine.replay(world.engine, world.log, [REGULATOR.xonly], fresh) == world.roots


@pytest.mark.parametrize(
    ("named", "more", "want"),
    [
        ("S0020", {}, (400, "args.serials")),  # not a list
        ([], {}, (400, "args.serials")),
        (["S0020", "S0021", "S0020"], {}, (400, "args.serials[2]")),  # repeated
        (["S0020", "a b"], {}, (400, "args.serials[1]")),  # not set 82
        (serials(*range(20, 41)), {}, (400, "args.serials")),  # 21 > the quantity, 20
        (serials(20), {"sscc": "106141411234567890"}, (400, "args.sscc")),  # check digit
        (serials(20), {"sscc": "10614141123456789"}, (400, "args.sscc")),  # 17 digits
        (serials(20), {"sscc": 1061414112345678}, (400, "args.sscc")),  # a number
        (["S0020", "NOPE"], {}, (409, "serial")),  # never registered
    ],
)
def test_a_packed_ship_is_refused_naming_the_first_bad_serial(
    world: World, named: Any, more: dict[str, Any], want: tuple[int, str]
) -> None:
    assert refused(world, "M", "ship", packed_ship(world, "P1", named, **more)) == want


def test_a_decommissioned_or_moved_pack_cannot_be_shipped(world: World) -> None:
    decommission(world, "S0001")
    args = {"gtin": GTIN, "lot": "L1", "shipment": "B1", "quantity": 1, "serials": ["S0001"]}
    error = world.refused("R", "lots", "ship", {**args, "receiver": world.parties["P"].did})
    assert (error.status, error.reason) == (409, "holder")  # R holds none now
    msg = world.refused("M", "lots", "ship", packed_ship(world, "B2", ["S0020", "S0001"]))
    assert (msg.status, msg.reason) == (409, "serial")
    assert "'S0001'" in msg.detail and "dispensed in lot L1" in msg.detail
    lone = world.refused("M", "lots", "ship", {**packed_ship(world, "B3", ["S0020"])} | {
        "sscc": SSCC, "serials": None
    })  # fmt: skip
    assert (lone.status, lone.reason) == (400, "args.serials")
    without = packed_ship(world, "B4", ["S0020"], sscc=SSCC)
    del without["serials"]
    error = world.refused("M", "lots", "ship", without)
    assert (error.status, error.reason) == (400, "args.sscc")

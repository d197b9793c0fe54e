"""The reads' fact index (cloud/contracts/facts_index.py) and the facts gathered through it
(cloud/contracts/facts.py): after every step of random transactions — lots commissioned,
shipped, received, split, dispensed, recalled; boxes attached and calibrated; certificates
issued and revoked; participants admitted, suspended and rotated — the facts equal, byte for
byte, those of a walk over every record of the State (kept here as the oracle: what facts.py
did before the index), and the index fed change by change equals one built from the records.
Then: a read looks up its own records only, as many with 10 unrelated lots as with 60.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from cloud.contracts import cid, facts, gs1, lots, participants
from cloud.contracts.engine import Applied, ContractError, Record, RecordType
from cloud.contracts.facts_index import FactIndex
from tests.cloud.contracts.world import GTIN, PROFILE, T0, World, admission, party, supply_chain

GTIN2 = "0950600013436" + str(gs1.check_digit("0950600013436"))  # a second product
BOXES = {"B1": "M", "B2": "D", "B3": "R"}  # box name -> the participant owning it
DOC = cid.cid_of(b"%PDF-1.7 certificate")
# What a step tries, the moves of lots weighted up (a lot must be held to be shipped).
OPS: tuple[str, ...] = ("commission", "ship", "ship", "ship", "receive", "receive", "receive")
OPS += ("split", "dispense", "attach", "attach", "calibrate", "certify", "certify", "revoke")
OPS += ("rotate", "status", "recall", "admit")
NEXT = {"M": ["D", "D2"], "M2": ["D", "D2"], "D": ["R", "R2"], "D2": ["R", "R2"]}
NEXT.update({"R": ["P", "P2"], "R2": ["P", "P2"], "P": ["P2"], "P2": ["P"]})


# -- the oracle: the walk over every record that facts.py did before the index


def _of(records: Iterable[Record], rtype: RecordType) -> Iterator[Record]:
    return (r for r in records if r.type == rtype)


def walked_lot_facts(world: World, gtin: str, lot: str) -> facts.LotFacts | None:
    """facts.lot_facts as it was: what no key reaches found by one walk over every record
    of the State (the keyed records as facts.lot_facts reads them, with an empty index)."""
    view = world.state
    keyed = facts.lot_facts(view, FactIndex(), gtin, lot)
    if keyed is None:
        return None
    shipments, boxes, count = [], [], 0
    for record in view.records.values():
        if record.type == lots.LOT and record.fields[0] == gtin:
            count += 1
        elif record.type == lots.SHIPMENT:
            s = record.value
            if (s["gtin"], s["lot"]) == (gtin, lot):
                s["shipment"] = record.fields[0]
                s["sender_id"], s["receiver_id"] = s["sender"], s["receiver"]
                s["sender"] = facts.did_of(view, s["sender"])
                s["receiver"] = facts.did_of(view, s["receiver"])
                shipments.append(s)
        elif record.type == lots.ATTACHMENT:
            for window in record.value["windows"]:
                if (window["gtin"], window["lot"]) == (gtin, lot):
                    box = record.fields[0]
                    calibration = view.get(lots.CALIBRATION, box)
                    boxes.append({"box": box, **window, "calibration": calibration})
    shipments.sort(key=lambda s: (s["shipped"], s["shipment"]))
    boxes.sort(key=lambda b: (b["start"], b["box"]))
    certificates = tuple(walked_certificates(world, f"{gtin}/{lot}"))
    return dataclasses.replace(
        keyed,
        shipments=tuple(shipments),
        boxes=tuple(boxes),
        certificates=certificates,
        lots_of_gtin=count,
    )


def walked_participants(world: World) -> list[dict[str, Any]]:
    found = [r.value for r in _of(world.state.records.values(), participants.PARTICIPANT)]
    return sorted(found, key=lambda p: str(p["id"]))


def walked_certificates(world: World, subject: str) -> list[dict[str, Any]]:
    records = _of(world.state.records.values(), lots.CERTIFICATE)
    found = [c for c in (r.value for r in records) if c["subject"] == subject]
    return sorted(found, key=lambda c: (c["since"], c["id"]))


def text(value: object) -> str:
    """The JSON an answer is made of, in the order its keys were built (as aiohttp sends it)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value)


# -- a world whose applied transactions feed a FactIndex


class Indexed(World):
    """A world that feeds every applied transaction to a FactIndex, as the read service's
    listener does."""

    def __init__(self, world: World) -> None:
        self.__dict__.update(world.__dict__)
        self.index = FactIndex.of(world.state.records)

    def apply(self, signed: Any) -> Applied:
        applied = super().apply(signed)
        self.index.apply(applied)
        return applied


def of_type(world: World, rtype: RecordType) -> list[Record]:
    return sorted(_of(world.state.records.values(), rtype), key=lambda r: r.fields)


def of_lot(world: World, gtin: str, lot: str) -> dict[str, Any]:
    identity = world.state.get(lots.LOT, gtin, lot)
    assert identity is not None
    return identity


def names(world: World) -> dict[str, str]:
    """Participant id -> the name the world knows it by (ids are the DIDs admitted with)."""
    out = {}
    for record in of_type(world, participants.PARTICIPANT):
        did = record.value["did"]
        out[record.fields[0]] = next(n for n, p in world.parties.items() if p.did == did)
    return out


def draw(world: World, rnd: random.Random, step: int) -> tuple[str, str, str, dict[str, Any]]:
    """Draw (signer, contract, type, args): mostly a move the state allows, some refused."""
    who_is = names(world)
    held = [
        (r.fields[0], r.fields[1], who_is[r.fields[2]], r.value["quantity"])
        for r in of_type(world, lots.HOLDING)
    ]
    moving = [
        (r.fields[0], r.value)
        for r in of_type(world, lots.SHIPMENT)
        if r.value["status"] != "received"
    ]
    known = [r.fields for r in of_type(world, lots.LOT)]
    certs = [r.value for r in of_type(world, lots.CERTIFICATE)]
    op = rnd.choice(OPS)
    when = T0 + (world.n + 1) * 1000  # the next transaction's own time (World.sign)
    if op == "ship" and held:
        gtin, lot, who, q = rnd.choice(held)
        to = rnd.choice(NEXT.get(who, ["D"]))
        args = {"gtin": gtin, "lot": lot, "shipment": f"S{step}", "quantity": rnd.randint(1, q)}
        return who, "lots", "ship", {**args, "receiver": world.parties[to].did}
    if op == "receive" and moving:
        shipment, s = rnd.choice(moving)
        quantity = s["quantity"] if rnd.random() < 0.8 else rnd.randint(0, s["quantity"])
        receiver = who_is[s["receiver"]] if rnd.random() < 0.9 else "R2"
        return receiver, "lots", "receive", {"shipment": shipment, "quantity": quantity}
    if op == "split" and held:
        gtin, lot, who, q = rnd.choice(held)
        cut = rnd.randint(1, q - 1) if q > 1 else q
        children = [{"lot": f"{lot}.{step}a"[-20:], "quantity": cut}]
        if q > cut:
            children.append({"lot": f"{lot}.{step}b"[-20:], "quantity": q - cut})
        return who, "lots", "split", {"gtin": gtin, "lot": lot, "children": children}
    if op == "dispense" and held:
        gtin, lot, who, q = rnd.choice(held)
        return who, "lots", "dispense", {"gtin": gtin, "lot": lot, "quantity": rnd.randint(1, q)}
    if op == "attach" and (held or moving):
        box = rnd.choice(list(BOXES))
        window = {"box": party(box).xonly.hex(), "start": when, "end": rnd.choice([None, when + 9])}
        if moving and (not held or rnd.random() < 0.5):
            shipment, s = rnd.choice(moving)
            return who_is[s["sender"]], "lots", "attach", {**window, "shipment": shipment}
        gtin, lot, who, _ = rnd.choice(held)
        return who, "lots", "attach", {**window, "gtin": gtin, "lot": lot}
    if op == "calibrate":
        box = rnd.choice(list(BOXES))
        args = {"box": party(box).xonly.hex(), "offset": rnd.randint(-50, 50)}
        return BOXES[box], "lots", "calibrate", {**args, "date": when, "due": when + 10_000}
    if op == "certify":
        args = {"certificate": f"C{step}", "valid_from": when, "valid_until": when + 10**9}
        args["document"] = DOC
        if known and rnd.random() < 0.5:
            gtin, lot = rnd.choice(known)
            maker = who_is[of_lot(world, gtin, lot)["manufacturer"]]
            return maker, "lots", "certify", {**args, "kind": "release", "gtin": gtin, "lot": lot}
        kind = rnd.choice(["gmp", "cold-storage"])
        subject = world.parties[rnd.choice(list(who_is.values()))].did
        return "regulator", "lots", "certify", {**args, "kind": kind, "subject": subject}
    if op == "revoke" and certs:
        c = rnd.choice(certs)
        issuer = who_is.get(c["issuer"], "regulator")
        return issuer, "lots", "revoke", {"certificate": c["id"], "reason": "withdrawn"}
    if op == "rotate":
        name = rnd.choice(["D", "D2", "R"])
        new = party(f"{name}/{step}")
        args = {"did": world.parties[name].did, "new_did": new.did}
        return name, "participants", "rotate", args
    if op == "status":
        target = world.parties[rnd.choice(["D2", "R2", "P"])].did
        kind = rnd.choice(["suspend", "reinstate"])
        return "regulator", "participants", kind, {"did": target, "reason": "review"}
    if op == "recall" and known:
        gtin, lot = rnd.choice(known)
        args = {"gtin": gtin, "lot": lot, "class": "II", "reason": "potency"}
        return rnd.choice(["M", "regulator"]), "lots", "recall", args
    if op == "admit":
        name = f"X{step}"
        world.parties[name] = party(name)
        role = rnd.choice(["distributor", "pharmacy"])
        return "regulator", "participants", "admit", admission(party(name), role, name, "FR")
    args = {"lot": f"C{step}", "expiry": "271200", "unit": "pack", "profile": PROFILE}
    args |= {"gtin": rnd.choice([GTIN, GTIN2]), "quantity": rnd.randint(1, 100)}
    return rnd.choice(["M", "M2"]), "lots", "commission", args


def apply_drawn(world: World, rnd: random.Random, step: int) -> str | None:
    """Apply one drawn transaction; return its type if it applied, None if it was refused.
    A rotation renames its signer."""
    who, contract, tx_type, args = draw(world, rnd, step)
    try:
        world.do(who, contract, tx_type, args)
    except ContractError:
        return None
    if tx_type == "rotate":
        world.parties[who] = party(f"{who}/{step}")
    return tx_type


def same_answers(world: Indexed) -> None:
    """Require every read's facts through the index to be the walk's, byte for byte, and the
    index fed change by change to answer as one built from the records."""
    rebuilt = FactIndex.of(world.state.records)
    subjects = [r.fields[0] for r in of_type(world, participants.PARTICIPANT)]
    for gtin, lot in [*(r.fields for r in of_type(world, lots.LOT)), (GTIN, "NEVER")]:
        found = facts.lot_facts(world.state, world.index, gtin, lot)
        assert text(found) == text(walked_lot_facts(world, gtin, lot))
        assert text(found) == text(facts.lot_facts(world.state, rebuilt, gtin, lot))
        subjects.append(f"{gtin}/{lot}")
    for subject in subjects:
        found_certs = facts.certificates_of(world.state, world.index, subject)
        assert text(found_certs) == text(walked_certificates(world, subject))
    everyone = facts.all_participants(world.state, world.index)
    assert text(everyone) == text(walked_participants(world))
    for gtin in (GTIN, GTIN2):
        assert world.index.lots_of(gtin) == rebuilt.lots_of(gtin)


def boxed_chain() -> Indexed:
    """The supply chain with boxes B1..B3 registered, owned by M, D and R."""
    world = Indexed(supply_chain())
    for box, owner in BOXES.items():
        world.state.boxes[party(box).xonly] = world.parties[owner].xonly
    return world


@pytest.mark.parametrize("seed", range(8))
def test_the_index_answers_as_the_walk_after_every_step(seed: int) -> None:
    rnd = random.Random(seed)
    world = boxed_chain()
    world.commission("M", "A", 100)
    same_answers(world)
    applied = []
    for step in range(60):
        applied.append(apply_drawn(world, rnd, step))
        same_answers(world)
    assert {"ship", "commission"} & set(applied)  # not only refusals


def test_the_random_steps_reach_every_kind_of_fact() -> None:
    """Across the seeds, the walks compared above saw shipments, boxes, certificates (and a
    revoked one), several GTINs, rotated senders, admitted participants: what the index must
    follow. (A generator that only drew refusals would pass the test above vacuously.)"""
    seen: set[str] = set()
    for seed in range(8):
        rnd = random.Random(seed)
        world = boxed_chain()
        world.commission("M", "A", 100)
        for step in range(60):
            apply_drawn(world, rnd, step)
        for gtin, lot in (r.fields for r in of_type(world, lots.LOT)):
            found = facts.lot_facts(world.state, world.index, gtin, lot)
            assert found is not None
            seen |= {"shipment"} if found.shipments else set()
            seen |= {"box"} if found.boxes else set()
            seen |= {"release"} if found.certificates else set()
            seen |= {"gtin2"} if gtin == GTIN2 else set()
            origin = {s["sender_id"] for s in found.shipments} - {
                s["sender"] for s in found.shipments
            }
            seen |= {"rotated sender"} if origin else set()
        for c in of_type(world, lots.CERTIFICATE):
            seen |= {"revoked"} if c.value["revoked"] else set()
        seen |= {"admitted"} if any(n.startswith("X") for n in names(world).values()) else set()
    want = {"shipment", "box", "release", "gtin2", "rotated sender", "revoked", "admitted"}
    assert want <= seen, want - seen


# -- a read looks up its own records only


class Counted(dict[bytes, Record]):
    """A State's records that count lookups by key and refuse to be walked."""

    lookups = 0

    def get(self, key: bytes, default: Any = None) -> Any:  # type: ignore[override]
        self.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key: bytes) -> Record:
        self.lookups += 1
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("a read walked every record")

    def values(self) -> Any:
        raise AssertionError("a read walked every record")

    def items(self) -> Any:
        raise AssertionError("a read walked every record")


def lookups(world: Indexed) -> tuple[int, int, int]:
    """Record lookups of: L1's facts, its certificates, the participants' list."""
    walked = world.state.records
    counted = Counted(walked)
    world.state.records = counted
    try:
        counts = []
        for read in (
            lambda: facts.lot_facts(world.state, world.index, GTIN, "L1"),
            lambda: facts.certificates_of(world.state, world.index, f"{GTIN}/L1"),
            lambda: facts.all_participants(world.state, world.index),
        ):
            counted.lookups = 0
            assert read()
            counts.append(counted.lookups)
        return counts[0], counts[1], counts[2]
    finally:
        world.state.records = walked


def other_lots(world: Indexed, first: int, last: int) -> None:
    """Lots O<first>..O<last - 1>, each shipped to D with a box on it and a release
    certificate: records of the kinds L1's read looks for, none of them L1's."""
    for n in range(first, last):
        lot = f"O{n}"
        world.commission("M", lot, 10)
        world.ship("M", lot, f"SO{n}", "D", 10)
        when = T0 + (world.n + 1) * 1000  # the attach's own time
        box = {"box": party("B1").xonly.hex(), "shipment": f"SO{n}", "start": when}
        world.lots("M", "attach", {**box, "end": None})
        certificate: dict[str, Any] = {"certificate": f"CO{n}", "kind": "release", "document": DOC}
        certificate |= {"gtin": GTIN, "lot": lot, "valid_from": when, "valid_until": when + 1}
        world.lots("M", "certify", certificate)


def test_a_read_looks_up_its_own_records_not_all_of_them() -> None:
    world = boxed_chain()
    world.commission("M", "L1", 100)
    world.ship("M", "L1", "S1", "D", 60)
    world.ship("M", "L1", "S2", "D2", 40)
    when = T0 + (world.n + 1) * 1000
    box = {"box": party("B1").xonly.hex(), "shipment": "S1", "start": when, "end": None}
    world.lots("M", "attach", box)
    world.receive("D", "S1", 60)
    certificate: dict[str, Any] = {
        "certificate": "C1",
        "kind": "release",
        "document": DOC,
        "gtin": GTIN,
    }
    certificate |= {"lot": "L1", "valid_from": when, "valid_until": when + 1}
    world.lots("M", "certify", certificate)
    other_lots(world, 0, 10)
    small = lookups(world)
    records = len(world.state.records)
    other_lots(world, 10, 60)
    assert len(world.state.records) > 4 * records  # the State grew ...
    lot, certs, everyone = lookups(world)
    assert (lot, certs) == small[:2]  # ... and L1's reads look up what they did
    # L1: identity, quality, custody, recall, cold chain, its maker; 2 shipments with sender
    # and receiver; 1 box with its calibration; 1 certificate.
    assert lot == 6 + 2 * 3 + 2 + 1 and certs == 1
    assert everyone == small[2] == len(names(world))  # the participants: one lookup each
    found = facts.lot_facts(world.state, world.index, GTIN, "L1")
    assert found is not None and found.lots_of_gtin == 61
    assert [b["box"] for b in found.boxes] == [party("B1").xonly.hex()]


# -- candidates: a record that left its group is not shown


def test_a_record_moved_or_deleted_leaves_the_answers_right() -> None:
    """No rule moves a shipment or a certificate to another lot, or deletes a certificate or
    a participant, but the index does not rely on it: the facts keep only what still
    belongs (facts_index.py's docstring), so the answers stay the walk's."""
    world = boxed_chain()
    world.commission("M", "L1", 100)
    world.commission("M", "L2", 100)
    world.ship("M", "L1", "S1", "D", 60)
    when = T0 + (world.n + 1) * 1000
    for c in ("C1", "C2"):
        certificate: dict[str, Any] = {
            "certificate": c,
            "kind": "release",
            "document": DOC,
            "gtin": GTIN,
        }
        certificate |= {"lot": "L1", "valid_from": when, "valid_until": when + 1}
        world.lots("M", "certify", certificate)
    state = world.state
    assert world.index.shipments(GTIN, "L1") == ["S1"]
    moved = {}
    for rtype, fields in ((lots.SHIPMENT, "S1"), (lots.CERTIFICATE, "C1")):
        record = state.record(rtype, fields)
        assert record is not None
        to_l2 = record.canonical.replace(b'"L1"', b'"L2"').replace(b"/L1", b"/L2")
        moved[record.key] = state.records[record.key] = dataclasses.replace(record, canonical=to_l2)
    gone = [lots.CERTIFICATE.key("C2"), participants.PARTICIPANT.key(world.parties["P2"].did)]
    for key in gone:
        del state.records[key]
    world.index.apply(Applied("moved", moved, frozenset(gone), (), None, None))
    for lot in ("L1", "L2"):
        found = facts.lot_facts(state, world.index, GTIN, lot)
        assert text(found) == text(walked_lot_facts(world, GTIN, lot))
        subject = f"{GTIN}/{lot}"
        certificates = facts.certificates_of(state, world.index, subject)
        assert text(certificates) == text(walked_certificates(world, subject))
    l2 = facts.lot_facts(state, world.index, GTIN, "L2")
    assert l2 is not None and [s["shipment"] for s in l2.shipments] == ["S1"]
    assert [c["id"] for c in l2.certificates] == ["C1"]
    assert facts.certificates_of(state, world.index, f"{GTIN}/L1") == []
    assert text(facts.all_participants(state, world.index)) == text(walked_participants(world))

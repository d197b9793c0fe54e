"""Boxes on lots (cloud/contracts/lots_boxes.py) and certificates (certificates.py): every
rule and refusal of attach, calibrate, certify and revoke, and the cold-storage licence's
effect on ship."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import cid, lots, lots_boxes, participants
from tests.cloud.contracts.world import GTIN, PROFILE, World, admission, party, supply_chain

BOX = party("box-1")
BOX2 = party("box-2")
DOC = cid.cid_of(b"%PDF-1.7 certificate")


@pytest.fixture
def world() -> World:
    chain = supply_chain()
    chain.commission("M", "L1", 100)
    chain.state.boxes[BOX.xonly] = chain.parties["M"].xonly  # owner key: M's own key
    chain.state.boxes[BOX2.xonly] = chain.parties["D"].xonly
    return chain


def at(world: World, who: str, tx_type: str, args: dict[str, Any], time_ms: int) -> Any:
    return world.apply(world.sign(who, "lots", tx_type, args, time_ms=time_ms))


def refused_at(
    world: World, who: str, tx_type: str, args: dict[str, Any], time_ms: int
) -> tuple[int, str]:
    error = world.refuse(world.sign(who, "lots", tx_type, args, time_ms=time_ms))
    return error.status, error.reason


NOW = 1_800_000_000_000


def storage(
    box: Any = BOX, start: int = NOW, end: int | None = None, **more: Any
) -> dict[str, Any]:
    return {"box": box.xonly.hex(), "gtin": GTIN, "lot": "L1", "start": start, "end": end, **more}


# -- attach


def test_attach_to_storage_records_the_window_and_the_leg(world: World) -> None:
    at(world, "M", "attach", storage(end=NOW + 3_600_000), NOW)
    m = world.parties["M"].did
    assert lots_boxes.windows(world.state, BOX.xonly) == [
        {
            "leg": f"storage:{m}",
            "gtin": GTIN,
            "lot": "L1",
            "shipment": None,
            "start": NOW,
            "end": NOW + 3_600_000,
            "by": m,
        }
    ]
    leg = world.state.get(lots.LEG, GTIN, "L1", f"storage:{m}")
    assert leg == {"start": NOW, "shipment": None, "boxes": [BOX.xonly.hex()]}
    record = world.state.record(lots.ATTACHMENT, BOX.xonly.hex())
    assert record is not None and record.salt is not None  # private: no holder on the tree


def test_a_window_never_starts_before_its_transaction(world: World) -> None:
    assert refused_at(world, "M", "attach", storage(start=NOW - 1), NOW) == (409, "window")


def test_a_window_is_never_shortened_only_extended(world: World) -> None:
    at(world, "M", "attach", storage(end=NOW + 10_000), NOW)
    later = NOW + 5_000
    assert refused_at(world, "M", "attach", storage(end=NOW + 9_999), later) == (409, "shortened")
    assert refused_at(world, "M", "attach", storage(start=later, end=None), later) == (
        409,
        "shortened",
    )
    at(world, "M", "attach", storage(end=NOW + 20_000), later)
    at(world, "M", "attach", storage(end=None), later + 1)
    assert refused_at(world, "M", "attach", storage(end=NOW + 30_000), later + 2) == (
        409,
        "shortened",
    )
    (window,) = lots_boxes.windows(world.state, BOX.xonly)
    assert (window["start"], window["end"]) == (NOW, None)


def test_an_ended_window_cannot_be_extended_after_the_fact(world: World) -> None:
    at(world, "M", "attach", storage(end=NOW + 10_000), NOW)
    assert refused_at(world, "M", "attach", storage(end=NOW + 90_000), NOW + 10_001) == (
        409,
        "ended",
    )


def test_a_second_box_cannot_start_a_leg_earlier(world: World) -> None:
    world.state.boxes[BOX2.xonly] = world.parties["M"].xonly
    at(world, "M", "attach", storage(start=NOW + 60_000), NOW)
    assert refused_at(world, "M", "attach", storage(BOX2, start=NOW + 1), NOW) == (409, "window")
    at(world, "M", "attach", storage(BOX2, start=NOW + 60_000), NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"box": "AB" * 32}, "args.box"),
        ({"box": "ab"}, "args.box"),
        ({"end": NOW}, "args.end"),
        ({"start": -1}, "args.start"),
        ({"lot": "L 1"}, "args.lot"),
        ({"extra": 1}, "args"),
    ],
)
def test_attach_refuses_malformed_fields(world: World, change: dict[str, Any], field: str) -> None:
    assert refused_at(world, "M", "attach", {**storage(), **change}, NOW) == (400, field)


def test_attach_refuses_by_rule(world: World) -> None:
    unregistered = storage(party("nobody"))
    assert refused_at(world, "M", "attach", unregistered, NOW) == (409, "box")
    assert refused_at(world, "M", "attach", storage(BOX2), NOW) == (403, "owner")
    assert refused_at(world, "D", "attach", storage(BOX2), NOW) == (409, "holder")
    assert refused_at(world, "M", "attach", storage(lot="L2"), NOW) == (409, "lot")
    assert refused_at(world, "P", "attach", storage(), NOW) == (403, "access")
    assert refused_at(world, "O", "attach", storage(), NOW) == (403, "access")


def test_attach_to_a_shipment_only_by_its_sender_while_in_transit(world: World) -> None:
    world.ship("M", "L1", "S1", "D", 10)
    ship = {"box": BOX.xonly.hex(), "shipment": "S1", "start": NOW, "end": None}
    assert refused_at(world, "M", "attach", {**ship, "shipment": "S9"}, NOW) == (409, "shipment")
    assert refused_at(world, "D", "attach", {**ship, "box": BOX2.xonly.hex()}, NOW) == (
        409,
        "shipment",
    )
    at(world, "M", "attach", ship, NOW)
    assert lots_boxes.windows(world.state, BOX.xonly)[0]["leg"] == "shipment:S1"
    world.receive("D", "S1", 10)
    assert refused_at(
        world, "M", "attach", {**ship, "box": BOX.xonly.hex(), "end": NOW + 9}, NOW
    ) == (
        409,
        "shipment",
    )


def test_attach_refuses_a_recalled_lot(world: World) -> None:
    world.lots("M", "recall", {"gtin": GTIN, "lot": "L1", "class": "II", "reason": "r"})
    assert refused_at(world, "M", "attach", storage(), NOW) == (409, "recalled")


def test_owner_keys_named_at_admission_control_their_boxes(world: World) -> None:
    owner = party("fleet-owner")
    world.parties["D3"] = party("D3")
    args = {
        **admission(world.parties["D3"], "distributor", "D3"),
        "owner_keys": [owner.xonly.hex()],
    }
    world.do("regulator", "participants", "admit", args)
    assert participants.controller(world.state, owner.xonly) == world.parties["D3"].did
    assert participants.controller(world.state, world.parties["M"].xonly) == world.parties["M"].did
    assert participants.controller(world.state, party("nobody").xonly) is None
    again = {**admission(party("D4"), "distributor", "D4"), "owner_keys": [owner.xonly.hex()]}
    error = world.refused("regulator", "participants", "admit", again)
    assert (error.status, error.reason) == (409, "owner key")
    bad = {**admission(party("D5"), "distributor", "D5"), "owner_keys": ["xyz"]}
    error = world.refused("regulator", "participants", "admit", bad)
    assert (error.status, error.reason) == (400, "args.owner_keys[0]")
    box = party("fleet-box")
    world.state.boxes[box.xonly] = owner.xonly
    world.ship("M", "L1", "S1", "D3", 10)
    world.receive("D3", "S1", 10)
    at(world, "D3", "attach", storage(box), NOW)


# -- calibrate


def test_calibrate_records_the_due_date_for_the_flags(world: World) -> None:
    args = {"box": BOX.xonly.hex(), "offset": -15, "date": NOW, "due": NOW + 1500}
    at(world, "M", "calibrate", args, NOW)
    assert lots_boxes.calibration_due_s(world.state, BOX.xonly.hex()) == NOW // 1000 + 2
    assert lots_boxes.calibration_due_s(world.state, BOX2.xonly.hex()) is None
    assert refused_at(world, "D", "calibrate", args, NOW) == (403, "owner")
    assert refused_at(world, "M", "calibrate", {**args, "offset": 1001}, NOW) == (
        400,
        "args.offset",
    )
    assert refused_at(world, "M", "calibrate", {**args, "due": NOW}, NOW) == (400, "args.due")
    unregistered = {**args, "box": party("nobody").xonly.hex()}
    assert refused_at(world, "M", "calibrate", unregistered, NOW) == (409, "box")
    assert refused_at(world, "P", "calibrate", args, NOW) == (403, "access")


# -- certify and revoke


def cert(world: World, certificate: str, kind: str, subject: str, **more: Any) -> dict[str, Any]:
    args = {
        "certificate": certificate,
        "kind": kind,
        "valid_from": NOW,
        "valid_until": NOW + 86_400_000,
        "document": DOC,
    }
    if kind == "release":
        args |= {"gtin": GTIN, "lot": subject}
    else:
        args["subject"] = world.parties[subject].did
    return {**args, **more}


def test_certify_writes_public_validity_facts(world: World) -> None:
    at(world, "regulator", "certify", cert(world, "C1", "gmp", "M"), NOW)
    record = world.state.record(lots.CERTIFICATE, "C1")
    assert record is not None and record.salt is None
    assert record.value == {
        "id": "C1",
        "kind": "gmp",
        "subject": world.parties["M"].did,
        "issuer": world.parties["regulator"].did,
        "valid_from": NOW,
        "valid_until": NOW + 86_400_000,
        "document": DOC,
        "since": NOW,
        "revoked": None,
    }
    at(world, "M", "certify", cert(world, "R1", "release", "L1"), NOW)
    release = world.state.get(lots.CERTIFICATE, "R1")
    assert release is not None and release["subject"] == f"{GTIN}/L1"


def test_certify_refuses(world: World) -> None:
    args = cert(world, "C1", "gmp", "M")
    assert refused_at(world, "M", "certify", args, NOW) == (403, "role")
    assert refused_at(world, "D", "certify", args, NOW) == (403, "access")
    assert refused_at(world, "M2", "certify", cert(world, "R1", "release", "L1"), NOW) == (
        403,
        "role",
    )
    assert refused_at(world, "M", "certify", cert(world, "R1", "release", "L9"), NOW) == (
        409,
        "lot",
    )
    assert refused_at(world, "regulator", "certify", {**args, "document": "bafy"}, NOW) == (
        400,
        "args.document",
    )
    assert refused_at(world, "regulator", "certify", {**args, "valid_until": NOW}, NOW) == (
        400,
        "args.valid_until",
    )
    assert refused_at(world, "regulator", "certify", {**args, "kind": "iso"}, NOW) == (
        400,
        "args.kind",
    )
    stranger = {**args, "subject": party("nobody").did}
    assert refused_at(world, "regulator", "certify", stranger, NOW) == (409, "subject")
    at(world, "regulator", "certify", args, NOW)
    assert refused_at(world, "regulator", "certify", args, NOW) == (409, "certificate exists")


def test_revoke_by_the_issuer_only_once(world: World) -> None:
    at(world, "M", "certify", cert(world, "R1", "release", "L1"), NOW)
    revoke = {"certificate": "R1", "reason": "QA error"}
    assert refused_at(world, "regulator", "revoke", revoke, NOW) == (409, "issuer")
    assert refused_at(world, "M", "revoke", {**revoke, "certificate": "R9"}, NOW) == (
        409,
        "certificate",
    )
    at(world, "M", "revoke", revoke, NOW + 1)
    record = world.state.get(lots.CERTIFICATE, "R1")
    assert record is not None and record["revoked"] == {"reason": "QA error", "since": NOW + 1}
    assert refused_at(world, "M", "revoke", revoke, NOW + 2) == (409, "revoked")


COLD = {**PROFILE, "needs_licence": 1}


def ship_cold(world: World, shipment: str) -> dict[str, Any]:
    return {
        "gtin": GTIN,
        "lot": "COLD",
        "shipment": shipment,
        "receiver": world.parties["D"].did,
        "quantity": 1,
    }


def test_a_cold_storage_licence_lets_ship_reach_its_holder_while_valid(world: World) -> None:
    world.commission("M", "COLD", 10, profile=COLD)
    args = ship_cold(world, "S1")
    assert refused_at(world, "M", "ship", args, NOW) == (409, "licence")
    gmp = cert(world, "G1", "gmp", "D")
    at(world, "regulator", "certify", gmp, NOW)
    assert refused_at(world, "M", "ship", args, NOW) == (409, "licence")  # not a licence
    licence = cert(world, "CS1", "cold-storage", "D", valid_from=NOW + 1000)
    at(world, "regulator", "certify", licence, NOW)
    assert world.state.get(lots.LICENCE, world.parties["D"].did) == {
        "certificates": {"CS1": [NOW + 1000, NOW + 86_400_000]}
    }
    assert refused_at(world, "M", "ship", args, NOW + 999) == (409, "licence")  # not yet
    at(world, "M", "ship", args, NOW + 1000)
    until = NOW + 86_400_000
    assert refused_at(world, "M", "ship", ship_cold(world, "S2"), until) == (409, "licence")
    at(world, "M", "ship", ship_cold(world, "S3"), until - 1)
    at(world, "regulator", "revoke", {"certificate": "CS1", "reason": "audit"}, NOW + 2000)
    assert world.state.get(lots.LICENCE, world.parties["D"].did) is None
    assert refused_at(world, "M", "ship", ship_cold(world, "S4"), NOW + 3000) == (
        409,
        "licence",
    )

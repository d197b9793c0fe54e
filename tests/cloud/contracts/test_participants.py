"""The participants contract (cloud/contracts/participants.py): admit, suspend, reinstate and
rotate, the x-only identity, and every refusal with its status and reason."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.contracts import didkey, participants
from cloud.contracts.engine import State
from tests.cloud.contracts.world import REGULATOR, World, admission, party, supply_chain


def test_admit_writes_private_records_and_tells_the_participant() -> None:
    world = World()
    m = party("M")
    applied = world.do("regulator", "participants", "admit", admission(m, "manufacturer", "M"))
    record = world.state.get(participants.PARTICIPANT, m.did)
    assert record == {
        "id": m.did,
        "did": m.did,
        "role": "manufacturer",
        "name": "M",
        "region": "DE",
        "licence": {"number": "L-M", "issuer": "BfArM"},
        "status": "active",
        "since": world.log[0][0].body.time,
        "reason": "admitted",
    }
    assert world.state.get(participants.KEY, m.xonly.hex()) == {
        "participant": m.did,
        "did": m.did,
        "current": True,
    }
    assert [(n.did, n.event) for n in applied.notifications] == [
        (m.did, {"type": "admitted", "role": "manufacturer"})
    ]
    for stored in applied.put.values():
        assert stored.salt is not None and stored.leaf != stored.canonical  # private
    assert participants.identify(world.state, m.did).role == "manufacturer"


def test_the_regulator_is_configuration_not_a_participant() -> None:
    world = World()
    me = participants.identify(world.state, REGULATOR.did)
    assert (me.role, me.id, me.did) == ("regulator", REGULATOR.did, REGULATOR.did)
    assert world.state.get(participants.KEY, REGULATOR.xonly.hex()) is None
    error = world.refused(
        "regulator", "participants", "admit", admission(REGULATOR, "manufacturer", "R")
    )
    assert (error.status, error.reason) == (409, "admitted")


def test_strangers_and_other_regulators_are_refused() -> None:
    world = World()
    stranger = party("stranger")
    error = world.refused(stranger, "participants", "admit", admission(party("x"), "pharmacy", "x"))
    assert (error.status, error.reason) == (403, "participant")
    assert "not an admitted participant" in error.detail
    # Another State with no regulator: the same key is nobody.
    assert State().regulators == frozenset()


@pytest.mark.parametrize("role", ["manufacturer", "distributor", "operator_team"])
def test_only_the_regulator_admits(role: str) -> None:
    world = World()
    world.admit("A", role)
    error = world.refused("A", "participants", "admit", admission(party("B"), "pharmacy", "B"))
    assert error.status == 403
    # The manufacturer's compliance cell is "yes": the rule narrows it to the regulator.
    assert error.reason == ("role" if role == "manufacturer" else "access")


def test_a_second_did_with_the_same_xonly_key_is_refused() -> None:
    world = World()
    m = world.admit("M", "manufacturer")
    point = didkey.to_point(m.did)
    twin = didkey.from_point(bytes([point[0] ^ 1]) + point[1:])  # 0x02||x <-> 0x03||x
    assert twin != m.did and didkey.to_xonly(twin) == m.xonly
    args = {**admission(m, "pharmacy", "twin"), "did": twin}
    error = world.refused("regulator", "participants", "admit", args)
    assert (error.status, error.reason) == (409, "admitted")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"did": "did:key:zNope"}, "args.did"),
        ({"role": "regulator"}, "args.role"),
        ({"role": "patient"}, "args.role"),
        ({"name": ""}, "args.name"),
        ({"region": "de"}, "args.region"),
        ({"region": "DEU"}, "args.region"),
        ({"licence": "L-1"}, "args.licence"),
        ({"licence": {"number": "L 1", "issuer": "x"}}, "args.licence.number"),
        ({"licence": {"number": "L1"}}, "args.licence"),
        ({"extra": 1}, "args"),
    ],
)
def test_admit_refuses_malformed_args(change: dict[str, Any], field: str) -> None:
    world = World()
    error = world.refused(
        "regulator", "participants", "admit", {**admission(party("A"), "pharmacy", "A"), **change}
    )
    assert (error.status, error.reason) == (400, field)


def test_suspend_and_reinstate() -> None:
    world = supply_chain()
    d = world.parties["D"].did
    world.do("regulator", "participants", "suspend", {"did": d, "reason": "GDP audit"})
    assert world.state.get(participants.PARTICIPANT, d)["status"] == "suspended"
    # A suspended participant's transactions are refused, whatever they are.
    error = world.refused("D", "participants", "rotate", {"did": d, "new_did": party("D'").did})
    assert (error.status, error.reason) == (403, "participant")
    assert "suspended: GDP audit" in error.detail
    again = world.refused("regulator", "participants", "suspend", {"did": d, "reason": "x"})
    assert (again.status, again.reason) == (409, "suspended")
    world.do("regulator", "participants", "reinstate", {"did": d, "reason": "audit passed"})
    assert participants.identify(world.state, d).role == "distributor"
    error = world.refused("regulator", "participants", "reinstate", {"did": d, "reason": "x"})
    assert (error.status, error.reason) == (409, "not suspended")
    error = world.refused(
        "regulator", "participants", "suspend", {"did": party("nobody").did, "reason": "x"}
    )
    assert (error.status, error.reason) == (409, "admitted")
    error = world.refused("M", "participants", "suspend", {"did": d, "reason": "x"})
    assert (error.status, error.reason) == (403, "role")


def test_rotate_by_the_old_key_moves_role_and_holdings() -> None:
    world = supply_chain()
    world.commission("M", "L1", 100)
    world.ship("M", "L1", "S1", "D", 40)
    old, new = world.parties["D"], party("D-new")
    world.do("D", "participants", "rotate", {"did": old.did, "new_did": new.did})
    world.parties["D"] = new
    # The new key signs as the same participant and receives what was shipped to the old DID.
    world.receive("D", "S1", 40)
    me = participants.identify(world.state, new.did)
    assert (me.id, me.did, me.role) == (old.did, new.did, "distributor")
    error = world.refused(old, "lots", "receive", {"shipment": "S1", "quantity": 40})
    assert (error.status, error.reason) == (403, "participant")
    assert "rotated" in error.detail
    # The old key can never come back, nor be admitted again.
    error = world.refused("regulator", "participants", "admit", admission(old, "pharmacy", "x"))
    assert (error.status, error.reason) == (409, "admitted")


def test_rotate_refusals() -> None:
    world = supply_chain()
    d, r = world.parties["D"], world.parties["R"]
    error = world.refused("D", "participants", "rotate", {"did": r.did, "new_did": party("n").did})
    assert (error.status, error.reason) == (403, "access")
    assert "write: distributor × entities' identity = own only" in error.detail
    error = world.refused("D", "participants", "rotate", {"did": d.did, "new_did": r.did})
    assert (error.status, error.reason) == (409, "key taken")
    error = world.refused("D", "participants", "rotate", {"did": d.did, "new_did": REGULATOR.did})
    assert (error.status, error.reason) == (409, "key taken")
    error = world.refused("D", "participants", "rotate", {"did": d.did, "new_did": "did:key:z1"})
    assert (error.status, error.reason) == (400, "args.new_did")


def test_the_regulator_rotates_a_lost_key_even_of_a_suspended_participant() -> None:
    world = supply_chain()
    p = world.parties["P"]
    world.do("regulator", "participants", "suspend", {"did": p.did, "reason": "key lost"})
    new = party("P-new")
    world.do("regulator", "participants", "rotate", {"did": p.did, "new_did": new.did})
    error = world.refused(new, "lots", "dispense", {"gtin": "x", "lot": "x", "quantity": 1})
    assert (error.status, error.reason) == (403, "participant")  # still suspended
    world.do("regulator", "participants", "reinstate", {"did": new.did, "reason": "new key"})
    assert participants.identify(world.state, new.did).id == p.did
    error = world.refused(
        "regulator", "participants", "rotate", {"did": p.did, "new_did": party("z").did}
    )
    assert (error.status, error.reason) == (409, "rotated")

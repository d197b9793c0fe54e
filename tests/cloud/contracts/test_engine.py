"""The contract engine (cloud/contracts/engine.py): transactions applied all or nothing
through an overlay, replay guards, record leaves, the arrival time check, and replay: the
same transactions from scratch reach the same roots, and a refused one leaves nothing."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloud.contracts import catalog, lots, participants
from cloud.contracts.engine import (
    MAX_SKEW_MS,
    Context,
    Contract,
    ContractError,
    Engine,
    Invalid,
    Record,
    RecordType,
    ReplayError,
    State,
    check_time,
    record_salt,
    replay,
    replay_blocks,
)
from cloud.contracts.statetree_hash import EMPTY
from cloud.contracts.statetree_proof import verify_proof
from tests.cloud.contracts.world import (
    GTIN,
    PROFILE,
    REGULATOR,
    T0,
    World,
    party,
    snapshot,
    supply_chain,
)


def test_unknown_contract_and_type_are_400() -> None:
    world = World()
    error = world.refused("regulator", "shipping", "admit", {})
    assert (error.status, error.reason) == (400, "tx.contract")
    error = world.refused("regulator", "lots", "teleport", {})
    assert (error.status, error.reason) == (400, "tx.type")


def test_a_nonce_is_used_once_per_signer_and_a_refusal_uses_none() -> None:
    world = supply_chain()
    args = {"did": world.parties["D"].did, "reason": "audit"}
    first = world.sign("regulator", "participants", "suspend", args)
    world.apply(first)
    error = world.refuse(first)  # the very same bytes again
    assert (error.status, error.reason) == (409, "replayed")
    again = world.sign("regulator", "participants", "reinstate", args, nonce=first.body.nonce)
    assert world.refuse(again).reason == "replayed"
    # Another signer may use the same nonce.
    world.commission("M", "N1", 1, nonce=first.body.nonce)
    # A refused transaction leaves its nonce unused: the same nonce then applies.
    bad = world.sign(
        "regulator", "participants", "suspend", {"did": "x", "reason": "y"}, nonce="ab" * 16
    )
    assert world.refuse(bad).reason == "args.did"
    world.apply(world.sign("regulator", "participants", "reinstate", args, nonce="ab" * 16))


def test_applied_lists_puts_deletes_and_the_root() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10)
    before = world.state.root
    applied = world.ship("M", "L1", "S1", "D", 10)
    m = world.parties["M"].did
    assert lots.HOLDING.key(GTIN, "L1", m) in applied.deleted
    assert lots.SHIPMENT.key("S1") in applied.put
    assert applied.root == world.state.root != before
    assert applied.records == world.state.tree.records == len(world.state.records)
    assert applied.tx_id == world.log[-1][0].id


def test_salt_must_be_32_bytes() -> None:
    world = World()
    signed = world.sign("regulator", "participants", "suspend", {"did": "x", "reason": "y"})
    with pytest.raises(ValueError, match="32 bytes"):
        world.engine.apply(world.state, signed, b"short")


def test_check_time_on_arrival() -> None:
    world = World()
    signed = world.sign("regulator", "participants", "admit", {}, time_ms=T0)
    check_time(signed, T0 + MAX_SKEW_MS)
    check_time(signed, T0 - MAX_SKEW_MS)
    with pytest.raises(Invalid) as info:
        check_time(signed, T0 + MAX_SKEW_MS + 1)
    assert (info.value.status, info.value.reason) == (400, "tx.time")


def test_replay_names_the_first_transaction_it_refuses() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10)
    world.ship("M", "L1", "S1", "D", 10)
    # Without the admissions (the first nine), the commission is refused on replay.
    with pytest.raises(ReplayError) as info:
        replay(world.engine, world.log[9:], world.state.regulators)
    assert info.value.index == 0 and info.value.error.reason == "participant"
    assert replay(world.engine, [], [REGULATOR.xonly]) == []
    assert State().root == EMPTY


def test_a_private_leaf_depends_on_the_salt_a_public_one_does_not() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10)
    other = State(world.state.regulators)
    engine = catalog.engine()
    for signed, salt in world.log:
        engine.apply(other, signed, hashlib.sha256(salt).digest())
    assert other.root != world.state.root
    for key, record in world.state.records.items():
        if record.type.private:
            assert other.tree.get(key) != world.state.tree.get(key)
        else:
            assert other.tree.get(key) == world.state.tree.get(key)


# -- random sequences: replay equals live, a refusal changes nothing

OPS = ["ship", "receive", "split", "dispense", "hold", "dispose", "recall", "commission", "status"]
NEXT = {"M": ["D", "D2"], "M2": ["D", "D2"], "D": ["R", "R2"], "D2": ["R", "R2"]}
NEXT.update({"R": ["P", "P2"], "R2": ["P", "P2"], "P": [], "P2": []})


def holdings(world: World) -> list[tuple[str, str, int]]:
    """(lot, holder's name, quantity) for every holding, in a stable order."""
    names = {party.did: name for name, party in world.parties.items()}
    out = []
    for record in world.state.records.values():
        if record.type == lots.HOLDING:
            _, lot, pid = record.fields
            out.append((lot, names[pid], record.value["quantity"]))
    return sorted(out)


def in_transit(world: World) -> list[tuple[str, str, int]]:
    """(shipment, receiver's name, quantity) of every shipment not yet received."""
    names = {party.did: name for name, party in world.parties.items()}
    out = []
    for record in world.state.records.values():
        if record.type == lots.SHIPMENT and record.value["status"] == "in_transit":
            out.append(
                (record.fields[0], names[record.value["receiver"]], record.value["quantity"])
            )
    return sorted(out)


def draw_tx(
    world: World, data: st.DataObject, step: int
) -> tuple[str, str, str, dict[str, object]]:
    """Draw (signer, contract, type, args): mostly a move the state allows, sometimes one
    slightly off (a wrong receiver, one unit too many), so both paths are exercised."""
    off = data.draw(st.integers(0, 5)) == 0  # about one in six is nudged out of bounds
    op = data.draw(st.sampled_from(OPS))
    held = holdings(world)
    if op in ("ship", "split", "dispense", "hold") and held:
        lot, who, q = data.draw(st.sampled_from(held))
        ref: dict[str, object] = {"gtin": GTIN, "lot": lot}
        if op == "ship":
            to = data.draw(st.sampled_from(NEXT[who] or ["D"]))
            if off:
                to = data.draw(st.sampled_from(list(NEXT)))
            n = data.draw(st.integers(1, q)) + off
            return (
                who,
                "lots",
                "ship",
                {**ref, "shipment": f"S{step}", "receiver": world.parties[to].did, "quantity": n},
            )
        if op == "split":
            cuts = sorted(data.draw(st.sets(st.integers(1, q - 1), max_size=3))) if q > 1 else []
            sizes = [b - a for a, b in zip([0, *cuts], [*cuts, q + off], strict=True)]
            children = [{"lot": f"{lot}.{i}"[-20:], "quantity": n} for i, n in enumerate(sizes)]
            return who, "lots", "split", {**ref, "children": children}
        if op == "dispense":
            return who, "lots", "dispense", {**ref, "quantity": data.draw(st.integers(1, q)) + off}
        return who, "lots", "hold", {**ref, "kind": "hold", "reason": "check"}
    lots_known = sorted({r.fields[1] for r in world.state.records.values() if r.type == lots.LOT})
    if op == "receive" and (moving := in_transit(world)):
        shipment, to, n = data.draw(st.sampled_from(moving))
        count = n if not off else data.draw(st.integers(0, n + 2))
        return (
            (to if not off else "R2"),
            "lots",
            "receive",
            {"shipment": shipment, "quantity": count},
        )
    if op in ("dispose", "recall") and lots_known:
        lot = data.draw(st.sampled_from(lots_known))
        who = data.draw(st.sampled_from(["M", "regulator"] if not off else ["M2", "D"]))
        ref = {"gtin": GTIN, "lot": lot}
        if op == "dispose":
            outcome = data.draw(st.sampled_from(["released", "rejected"]))
            return who, "lots", "dispose", {**ref, "outcome": outcome, "reason": "checked"}
        return who, "lots", "recall", {**ref, "class": "II", "reason": "potency"}
    if op == "status":
        target = data.draw(st.sampled_from(["D", "D2", "R", "R2", "P", "P2"]))
        kind = data.draw(st.sampled_from(["suspend", "reinstate"]))
        args = {"did": world.parties[target].did, "reason": "review"}
        return "regulator", "participants", kind, args
    args = {"gtin": GTIN, "lot": f"C{step}", "expiry": "271200", "unit": "pack", "profile": PROFILE}
    return (
        ("M" if not off else "D"),
        "lots",
        "commission",
        {**args, "quantity": 1 + data.draw(st.integers(0, 200))},
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_replaying_a_random_sequence_reaches_the_same_roots(data: st.DataObject) -> None:
    world = supply_chain()
    world.commission("M", "A", 100)
    applied = refused = 0
    for step in range(data.draw(st.integers(5, 40), label="steps")):
        who, contract, tx_type, args = draw_tx(world, data, step)
        signed = world.sign(who, contract, tx_type, args)
        before = snapshot(world.state)
        try:
            world.apply(signed)
            applied += 1
        except ContractError:
            assert snapshot(world.state) == before  # a refusal leaves nothing
            refused += 1
    event(f"applied {10 * applied // (applied + refused)}0%")
    fresh = State(world.state.regulators)
    assert replay(catalog.engine(), world.log, world.state.regulators, fresh) == world.roots
    assert fresh.records == world.state.records and fresh.root == world.state.root
    assert fresh.nonces == world.state.nonces and fresh.tx_ids == world.state.tx_ids
    # The same log cut into blocks: one tree update per block, the same root at each end.
    cuts = sorted(data.draw(st.sets(st.integers(1, len(world.log) - 1), max_size=5), label="cuts"))
    ends = [*cuts, len(world.log)]
    blocks = [world.log[a:b] for a, b in zip([0, *cuts], ends, strict=True)]
    roots = replay_blocks(catalog.engine(), blocks, world.state.regulators)
    assert roots == [world.roots[end - 1] for end in ends]


def test_private_leaf_known_answer() -> None:
    # Made with hashlib alone, tagged_hash(tag, m) = SHA-256(SHA-256(tag) * 2 || m):
    #   key  = record_key("lots", 5, GTIN, "L1", "holder")
    #   salt = tagged_hash("PharmaSync/state/salt/v1", bytes(range(32)) || key)
    #   leaf = tagged_hash("PharmaSync/state/private/v1", salt || b'{"quantity":30}')
    holding = RecordType("lots", 5, "holding", private=True)
    key = holding.key(GTIN, "L1", "holder")
    assert key.hex() == "797a673c70f0cba4a41357c3fec5029727d863f822f0e152d0577cd60933cd2a"
    salt = record_salt(bytes(range(32)), key)
    assert salt.hex() == "06eb840168657f8fa1b3472cf71da89df7a117c9eb308197b1e412265fea8ef1"
    record = Record(holding, (GTIN, "L1", "holder"), b'{"quantity":30}', salt)
    assert record.leaf.hex() == "92e069b6e924d1852ee160bc44ddda16db87957a44989c347fd763e09be3dada"
    public = Record(lots.LOT, (GTIN, "L1"), b'{"lot":"L1"}', None)
    assert public.leaf == b'{"lot":"L1"}'


NOTES = RecordType("guestbook", 1, "note", private=False)


def sign_guestbook(ctx: Context) -> None:
    """An open rule: anyone with a key may sign; participants get their role noted."""
    role = ctx.signer.role if ctx.signer else "public"
    ctx.put(NOTES, [ctx.tx.body.signer], {"role": role, "text": ctx.args.get("text", "")})


def test_an_open_type_runs_with_no_participant_and_others_need_one() -> None:
    rules = {"sign": sign_guestbook, "close": sign_guestbook}
    book = Contract("guestbook", rules, frozenset({"sign"}), matrix=False)
    engine = Engine([book, *catalog.CONTRACTS], participants.identify)
    world = World()
    world.engine = engine
    stranger = party("stranger")
    applied = world.do(stranger, "guestbook", "sign", {"text": "hi"})
    assert world.state.get(NOTES, stranger.did) == {"role": "public", "text": "hi"}
    assert world.state.tree.get(NOTES.key(stranger.did)) == b'{"role":"public","text":"hi"}'
    assert applied.records == 1
    world.do("regulator", "guestbook", "sign", {})
    assert world.state.get(NOTES, REGULATOR.did) == {"role": "regulator", "text": ""}
    error = world.refused(stranger, "guestbook", "close", {})
    assert (error.status, error.reason) == (403, "participant")


def test_a_deferred_root_waits_for_the_end_of_the_block() -> None:
    world = supply_chain()
    world.commission("M", "L1", 10)
    before = world.state.root
    signed = world.sign(
        "M",
        "lots",
        "ship",
        {
            "gtin": GTIN,
            "lot": "L1",
            "shipment": "S1",
            "receiver": world.parties["D"].did,
            "quantity": 4,
        },
    )
    applied = world.engine.apply(world.state, signed, bytes(32), root=False)
    assert applied.root is None and applied.records is None
    assert world.state.tree.root == before and world.state.pending  # the tree not yet touched
    assert world.state.get(lots.SHIPMENT, "S1") is not None  # the records are
    after = world.state.root  # reading the root applies the block's leaves
    assert after != before and not world.state.pending
    value, proof = world.state.prove(lots.SHIPMENT, "S1")
    assert value is not None and len(value) == 32
    verify_proof(after, lots.SHIPMENT.key("S1"), value, proof)
    assert world.state.prove(lots.SHIPMENT, "S2")[0] is None

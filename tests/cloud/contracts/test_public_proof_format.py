"""The public check's pure parts: the Digital Link path (cloud/contracts/digital_link.py), the
bundle's bytes and JSON (cloud/contracts/public_proof.py) and the facts read from a lot's
public records (cloud/contracts/public_facts.py). No ledger: a State built here."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.routes.resolver_links import path_of
from cloud.contracts import gs1, lots, public_facts
from cloud.contracts import public_multiproof as multiproof
from cloud.contracts.digital_link import parse_digital_link
from cloud.contracts.engine import Record, State
from cloud.contracts.public_proof import (
    LOT_RECORDS,
    OWN_LEAF,
    PublicProof,
    PublicProofFormatError,
    proven,
)
from cloud.contracts.stateroot import StateRoot
from cloud.contracts.statetree_proof import verify_proof
from gateway.jcs import canonicalize
from gateway.merkle_verify import ProofError

GTIN = "09506000134352"
TODAY = datetime.date(2026, 12, 6)
LOT = {"gtin": GTIN, "lot": "L1", "expiry": "2027-03-31", "unit": "pack", "profile": {}}
LOT |= {"manufacturer": "did:key:zQ3sh", "since": 1}
QUALITY = {"status": "released", "source": "commission", "reason": "commission", "since": 1}


def bundle(serial: str | None = None, grouped: bool = True) -> PublicProof:
    """A bundle of L1 (lot and quality present, recall and cold chain absent) in a State of
    200 records; its log entry, inclusion and note are placeholders (format only). Not
    `grouped`: the lot records under plain record keys, as before bundle version 3."""
    state = State()
    kinds = [dataclasses.replace(t, grouped=t.grouped and grouped) for t in LOT_RECORDS]
    for rtype, value in ((kinds[0], LOT), (kinds[1], QUALITY)):
        record = Record(rtype, (GTIN, "L1"), canonicalize(value), None)
        state.records[record.key] = record
    rnd = random.Random(3)
    fillers = {rnd.randbytes(32): rnd.randbytes(8) for _ in range(198)}
    state.tree.update({**fillers, **{k: r.leaf for k, r in state.records.items()}})
    proofs = [(t, *state.prove(t, GTIN, "L1")) for t in kinds]
    entry = StateRoot(state.count, 5, state.root).encode()
    return PublicProof(
        GTIN,
        "L1",
        serial,
        6,
        entry,
        (bytes(32),) * 3,
        "log\n7\nroot\n\n— log AAAA\n",
        tuple(proven(t, v, p) for t, v, p in proofs),
        grouped=grouped,
    )


def test_bytes_and_json_round_trip_and_leave_out_own_leaves() -> None:
    for serial in (None, "SN/01"):
        b = bundle(serial)
        data = b.to_bytes()
        assert data[0] == 3 and data[1] == (0 if serial is None else 1)
        assert PublicProof.from_bytes(data) == b
        assert PublicProof.from_json(json.loads(json.dumps(b.to_json()))) == b
        assert b.to_json()["version"] == 2
        # versions 1 and 2 (plain keys), as resolvers wrote them before, are still read
        old = bundle(serial, grouped=False)
        for version in (1, 2):
            data = old.to_bytes(version=version)
            assert data[0] == version and PublicProof.from_bytes(data) == old
        assert old.to_json()["version"] == 1
        assert PublicProof.from_json(json.loads(json.dumps(old.to_json()))) == old
        # a version that does not match the keys is not written
        for version, wrong in ((2, b), (3, old)):
            with pytest.raises(PublicProofFormatError, match="for these keys"):
                wrong.to_bytes(version=version)
    whole = sum(len(r.proof.to_bytes()) for r in b.records)
    compact = len(b.to_bytes()) - len(bundle().to_bytes())  # only the serial differs
    assert compact == 1 + len("SN/01")
    # two present records (lot, quality): 64 bytes each left out of the proofs' bytes
    data = bundle(grouped=False).to_bytes(version=1)
    assert data.count(bytes((1, OWN_LEAF))) >= 2 and whole > 128
    # version 2 also leaves out the top siblings the records' paths share
    version_2 = len(bundle(grouped=False).to_bytes())
    assert version_2 < len(data) - 4 * 4  # and 5 bytes of framing each
    # version 3: the lot's records under one 24-bit prefix share far more of their paths
    assert len(bundle().to_bytes()) < version_2


def test_version_2_shares_exactly_the_siblings_the_keys_derive() -> None:
    b = bundle()
    keys = [r.key(b.keys()) for r in b.records]
    depths = [r.proof.depth for r in b.records]
    derived = [multiproof.shared_with(keys, depths, j) for j in range(len(keys))]
    shared = [s + parts for _, s, parts in derived]
    assert shared[0] == 0 and sum(shared) > 0
    data = bytearray(b.to_bytes())
    # the written s of the last record: one more than derived is refused, not trusted
    tail = multiproof.write(keys, [r.value for r in b.records], [r.proof for r in b.records])
    at = len(data) - len(tail[-1]) + (65 if tail[-1][0] == 1 else 1) + 2
    assert data[at] == shared[-1]
    data[at] += 1
    with pytest.raises((PublicProofFormatError, ProofError)):
        PublicProof.from_bytes(bytes(data))


def test_every_cut_or_extended_bundle_is_a_format_error() -> None:
    data = bundle("S1").to_bytes()
    for end in range(len(data)):
        with pytest.raises((PublicProofFormatError, ProofError)):
            PublicProof.from_bytes(data[:end])
    with pytest.raises(PublicProofFormatError, match="after the last record"):
        PublicProof.from_bytes(data + b"\x00")


REAL = bundle("S1").to_bytes()


@given(st.integers(0, len(REAL) - 1), st.integers(0, 255), st.binary(max_size=8))
def test_any_altered_bundle_parses_or_is_refused_as_a_proof_error(
    at: int, byte: int, tail: bytes
) -> None:
    """One byte changed and bytes added anywhere: a bundle, or a ProofError, nothing else."""
    with contextlib.suppress(ProofError):
        PublicProof.from_bytes(REAL[:at] + bytes((byte,)) + tail + REAL[at + 1 :])


def test_an_own_leaf_proof_of_an_absent_record_is_refused() -> None:
    # The lot record alone, then its value cut out: its compact proof claims a leaf whose
    # value is gone.
    for version in (1, 2, 3):
        b = bundle(grouped=version == 3)
        lot = dataclasses.replace(b, records=(b.records[0],)).to_bytes(version)
        value_at = lot.index(b'{"expiry"')
        length = int.from_bytes(lot[value_at - 2 : value_at], "big")
        broken = lot[: value_at - 2] + b"\x00\x00" + lot[value_at + length :]
        with pytest.raises(PublicProofFormatError, match="own leaf for an absent record"):
            PublicProof.from_bytes(broken)


def test_the_resolver_path_is_the_digital_link_grammar() -> None:
    got = parse_digital_link(f"/01/{GTIN}/22/V/10/A%2FB/21/S%3F?17=270300", TODAY)
    assert (got.gtin, got.cpv, got.lot, got.serial) == (GTIN, "V", "A/B", "S?")
    assert got.expiry == gs1.Gs1Date("270300", datetime.date(2027, 3, 31))
    assert path_of(got) == f"/01/{GTIN}/22/V/10/A%2FB/21/S%3F"
    assert parse_digital_link("/01/96385074", TODAY).gtin == "00000096385074"  # GTIN-8
    assert parse_digital_link("/01/036000291452", TODAY).gtin == "00036000291452"  # GTIN-12
    uri = parse_digital_link(f"https://id.example/r/01/{GTIN}/10/L1?17=271200&x=1", TODAY)
    assert (uri.lot, uri.expiry and uri.expiry.yymmdd) == ("L1", "271200")
    with pytest.raises(gs1.Gs1Error) as e:
        parse_digital_link("https://id.example/02/1", TODAY)
    assert e.value.ai == "path"


def test_facts_of_a_lot() -> None:
    records = public_facts.PublicRecords(LOT, QUALITY, None, None)
    ok = public_facts.facts(records, TODAY, gs1.expiry("270300", TODAY))
    assert ok["verdict"] == public_facts.DISPENSABLE and ok["scanned_expiry"]["agrees"]
    late = public_facts.facts(records, datetime.date(2027, 4, 1))
    assert late["expired"] and late["verdict"] == public_facts.DO_NOT_DISPENSE
    quarantine = {**QUALITY, "status": "quarantined", "source": "cold-chain", "reason": "x"}
    cold = {"verdict": "cold chain: high excursion", "since": 5}
    held = public_facts.facts(public_facts.PublicRecords(LOT, quarantine, None, cold), TODAY)
    assert held["coldchain"] == {
        "within_profile": False,
        "verdict": "cold chain: high excursion",
        "since": 5,
        "standing": True,
    }
    assert held["reasons"] == ["quality status quarantined"]
    unknown = public_facts.facts(public_facts.PublicRecords(None, None, None, None), TODAY)
    assert unknown["verdict"] == public_facts.UNKNOWN and unknown["serial"] is None


@pytest.mark.parametrize("seed", range(40))
def test_version_2_rebuilds_every_proof_whole(seed: int) -> None:
    """Random trees (1..400 records) and a lot present or absent: whatever the proofs end
    at (own leaf, another leaf, an empty slot) and wherever their paths part, the bytes
    parse back to the same proofs, each still proving its record under the root."""
    rnd = random.Random(seed)
    state = State()
    lot = rnd.choice(["L1", "L2"])
    for rtype, value in ((lots.LOT, LOT), (lots.QUALITY, QUALITY)):
        record = Record(rtype, (GTIN, "L1"), canonicalize(value), None)
        state.records[record.key] = record
    fillers = {rnd.randbytes(32): rnd.randbytes(8) for _ in range(rnd.randrange(0, 400))}
    state.tree.update({**fillers, **{k: r.leaf for k, r in state.records.items()}})
    proofs = [(t, *state.prove(t, GTIN, lot)) for t in LOT_RECORDS]
    b = dataclasses.replace(bundle(), lot=lot, records=tuple(proven(t, v, p) for t, v, p in proofs))
    again = PublicProof.from_bytes(b.to_bytes())
    assert again == b
    for r in again.records:
        verify_proof(state.root, r.key(again.keys()), r.value, r.proof)

"""The public check bundle's golden vectors (tests/vectors/public-proof-v3.json, made by
tests/vectors/make_golden.py from docs/protocol.md, independent of cloud/): the keys, state
root and bundle bytes this implementation computes are those, and `verify --public`'s check
accepts each bundle with the facts it states."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cloud.audit.public_check import PublicCheckError, Scanned, Step, verify_public
from cloud.contracts import lots, pack_facts
from cloud.contracts.engine import State
from cloud.contracts.public_proof import PublicProof

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "public-proof-v3.json").read_text()
)
BUNDLES = {b["case"]: b for b in VECTORS["bundles"]}
TYPES = {t.code: t for t in (lots.LOT, lots.QUALITY, lots.RECALL, lots.COLDCHAIN)}
TYPES |= {t.code: t for t in (pack_facts.REGISTRATION, pack_facts.PACK)}


def label(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def scanned(case: dict) -> Scanned:
    s = case["scanned"]
    return Scanned(s["gtin"], s["lot"], s["serial"])


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_keys_root_and_bytes_are_the_vectors(name: str) -> None:
    case = BUNDLES[name]
    gtin, lot, serial = case["scanned"]["gtin"], case["scanned"]["lot"], case["scanned"]["serial"]
    fields = {14: (gtin, lot, "1"), 15: (gtin, serial)}
    for code, key in case["keys"].items():
        assert TYPES[int(code)].key(*fields.get(int(code), (gtin, lot))).hex() == key
    state = State()
    items = {label(f"filler {name} {i}"): label(f"value {i}")[:8] for i in range(60)}
    for code, value in case["records"].items():
        rtype = TYPES[int(code)]
        items[rtype.key(*fields.get(int(code), (gtin, lot)))] = value.encode()
    state.tree.update(items)
    assert state.tree.root.hex() == case["state_root"]
    data = bytes.fromhex(case["bundle"])
    bundle = PublicProof.from_bytes(data)
    assert bundle.to_bytes() == data and data[0] == 3  # one encoding, version 3
    assert bundle.checkpoint == case["checkpoint"]


def test_each_bundle_verifies_with_its_facts() -> None:
    vkey = VECTORS["log_vkey"]
    lot = verify_public(
        bytes.fromhex(BUNDLES["lot"]["bundle"]), log_vkey=vkey, scanned=scanned(BUNDLES["lot"])
    )
    assert lot.facts["authentic"] and lot.facts["verdict"] == "dispensable"
    # the pack's bundle saved while it was active still verifies as it was, and the bundle
    # of the state after it was dispensed says so
    for name, in_chain in (("pack", True), ("pack-dispensed", False)):
        report = verify_public(
            bytes.fromhex(BUNDLES[name]["bundle"]), log_vkey=vkey, scanned=scanned(BUNDLES[name])
        )
        assert report.facts["serial"]["registered"]
        assert report.facts["serial"]["in_supply_chain"] is in_chain


def test_version_3_bytes_read_as_version_2_are_refused() -> None:
    """The version byte says how the keys are made: a version 3 bundle relabelled 2 is
    checked with plain keys, under which its proofs are no proofs."""
    data = bytes.fromhex(BUNDLES["pack"]["bundle"])
    with pytest.raises(PublicCheckError) as caught:
        verify_public(
            b"\x02" + data[1:], log_vkey=VECTORS["log_vkey"], scanned=scanned(BUNDLES["pack"])
        )
    assert caught.value.step is Step.RECORD_PROOF


@pytest.mark.parametrize("lot", ["\ud800", "L\x00", "x" * 300, ""])
def test_a_pack_record_naming_no_lot_is_refused_at_its_value(lot: str) -> None:
    """The pack record's lot picks the keys of the lot records before any proof is checked:
    a lone surrogate there raised UnicodeEncodeError out of verify_public (bytes and JSON).
    A lot GS1 does not allow is refused as the record's value, or as the bundle's shape
    when the bytes are read."""
    case = BUNDLES["pack-dispensed"]
    bundle = PublicProof.from_bytes(bytes.fromhex(case["bundle"]))
    document = bundle.to_json()
    for record in document["records"]:
        if record["type"] == pack_facts.PACK.code:
            value = json.loads(record["value"])
            record["value"] = json.dumps({**value, "lot": lot}, separators=(",", ":"))
    with pytest.raises(PublicCheckError) as caught:
        verify_public(
            json.dumps(document).encode(), log_vkey=VECTORS["log_vkey"], scanned=scanned(case)
        )
    assert caught.value.step is Step.RECORD_VALUE, caught.value
    assert "pack record's lot" in caught.value.detail
    data = bytearray(bundle.to_bytes())
    old = json.dumps({"lot": "L1", "status": "dispensed"}, separators=(",", ":")).encode()
    new = json.dumps({"lot": lot, "status": "dispensed"}, separators=(",", ":")).encode()
    at = data.index(old)
    data[at - 2 : at + len(old)] = len(new).to_bytes(2, "big") + new
    with pytest.raises(PublicCheckError) as caught:
        verify_public(bytes(data), log_vkey=VECTORS["log_vkey"], scanned=scanned(case))
    assert caught.value.step is Step.SHAPE and "pack record's lot" in caught.value.detail

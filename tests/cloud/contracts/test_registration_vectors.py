"""The packs contract reproduces tests/vectors/registration-v1.json, made from docs/protocol.md
("Pack registrations") by tests/vectors/make_golden.py with hashlib only: a `lots` `serialize`
gives the registration record (key, count, root over the serials sorted by their bytes) and
each serial's inclusion proof byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloud.contracts import pack_facts, packs
from cloud.contracts.statetree_hash import grouped_key
from gateway.merkle_verify import verify_inclusion
from tests.cloud.contracts.world import GTIN, supply_chain

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "registration-v1.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["registrations"]


def test_serialize_gives_the_golden_registrations_and_proofs() -> None:
    world = supply_chain()
    for lot in dict.fromkeys(case["lot"] for case in CASES):
        world.commission("M", lot, sum(case["count"] for case in CASES if case["lot"] == lot))
    for case in CASES:
        assert case["gtin"] == GTIN
        args = {"gtin": GTIN, "lot": case["lot"], "serials": case["serials"]}
        world.lots("M", "serialize", args)  # in the order the vector gives them
        fields = (GTIN, case["lot"], str(case["number"]))
        assert grouped_key("lots", 14, *fields).hex() == case["record_key"]  # type byte 14
        assert packs.REGISTRATION.key(*fields).hex() == case["record_key"]
        record = world.state.get(packs.REGISTRATION, *fields)
        assert record is not None
        assert (record["count"], record["root"]) == (case["count"], case["root"])
        root = bytes.fromhex(case["root"])
        for want in case["proofs"]:
            proof = pack_facts.serial_proof(world.state, GTIN, want["serial"])
            assert proof is not None
            assert proof.to_json() == {
                "index": want["index"],
                "size": case["count"],
                "path": want["path"],
            }
            verify_inclusion(
                want["serial"].encode(), want["index"], case["count"], proof.path, root
            )


def test_the_vectors_sort_by_bytes_and_cover_one_and_uneven_trees() -> None:
    for case in CASES:
        assert case["sorted"] == sorted(case["serials"], key=str.encode)
        assert [p["serial"] for p in case["proofs"]] == case["sorted"]
    assert {case["count"] for case in CASES} >= {1, 4, 7}  # one leaf, a power of two, uneven
    assert [c["number"] for c in CASES if c["lot"] == CASES[0]["lot"]] == [1, 2]

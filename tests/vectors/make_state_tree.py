"""Make tests/vectors/state-tree-v1.json straight from docs/protocol.md, "State tree".

Uses hashlib and struct only, never cloud.contracts: the tree's root and proofs come from
the recursive definition in the document (empty -> 32 zero bytes, one record -> its leaf,
more -> a node over the two halves), so tests/cloud/contracts/test_state_tree_vectors.py
checks the module against the spec, not against itself.

Run: .venv/bin/python tests/vectors/make_state_tree.py > tests/vectors/state-tree-v1.json
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

EMPTY = bytes(32)


def tagged(tag: str, data: bytes) -> bytes:
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()


def framed(contract: str, record_type: int, fields: list[bytes]) -> bytes:
    name = contract.encode()
    out = bytes([len(name)]) + name + bytes([record_type])
    for f in fields:
        out += struct.pack(">I", len(f)) + f
    return out


def leaf(key: bytes, value: bytes) -> bytes:
    return tagged("PharmaSync/state/leaf", key + hashlib.sha256(value).digest())


def node(left: bytes, right: bytes) -> bytes:
    return tagged("PharmaSync/state/node", left + right)


def bit(key: bytes, i: int) -> int:
    return (key[i // 8] >> (7 - i % 8)) & 1


def root(records: list[tuple[bytes, bytes]], depth: int = 0) -> bytes:
    if not records:
        return EMPTY
    if len(records) == 1:
        return leaf(*records[0])
    left = [r for r in records if bit(r[0], depth) == 0]
    right = [r for r in records if bit(r[0], depth) == 1]
    return node(root(left, depth + 1), root(right, depth + 1))


def prove(records: list[tuple[bytes, bytes]], key: bytes) -> tuple[Any, list[bytes]]:
    """Return (the leaf the path ends at or None, siblings root side first)."""
    siblings: list[bytes] = []
    depth = 0
    while len(records) > 1:
        mine = [r for r in records if bit(r[0], depth) == bit(key, depth)]
        other = [r for r in records if bit(r[0], depth) != bit(key, depth)]
        siblings.append(root(other, depth + 1))
        records, depth = mine, depth + 1
    return (records[0] if records else None), siblings


def proof_bytes(end: Any, siblings: list[bytes]) -> bytes:
    out = bytes([1, 0 if end is None else 1])
    if end is not None:
        out += end[0] + hashlib.sha256(end[1]).digest()
    bitmap = bytearray((len(siblings) + 7) // 8)
    for i, s in enumerate(siblings):
        if s != EMPTY:
            bitmap[i // 8] |= 0x80 >> (i % 8)
    out += struct.pack(">H", len(siblings)) + bitmap
    return out + b"".join(s for s in siblings if s != EMPTY)


def proof_json(end: Any, siblings: list[bytes]) -> dict[str, Any]:
    data = proof_bytes(end, siblings)
    depth = len(siblings)
    at = 2 + (64 if end is not None else 0) + 2
    return {
        "version": 1,
        "leaf": None
        if end is None
        else {"key": end[0].hex(), "value_hash": hashlib.sha256(end[1]).hexdigest()},
        "depth": depth,
        "bitmap": data[at : at + (depth + 7) // 8].hex(),
        "siblings": [s.hex() for s in siblings if s != EMPTY],
    }


def tree(name: str, records: list[tuple[bytes, bytes]], asks: list[bytes]) -> dict[str, Any]:
    proofs = []
    for key in asks:
        end, siblings = prove(records, key)
        value = dict(records).get(key)
        proofs.append(
            {
                "key": key.hex(),
                "value": None if value is None else value.hex(),
                "proof": proof_bytes(end, siblings).hex(),
                "json": proof_json(end, siblings),
            }
        )
    return {
        "name": name,
        "records": [{"key": k.hex(), "value": v.hex()} for k, v in records],
        "root": root(records).hex(),
        "proofs": proofs,
    }


def main() -> None:
    key_cases: list[tuple[str, int, list[bytes]]] = [
        ("lots", 1, [b"09506000134352", b"LOT-A1"]),  # a lot: GTIN-14, lot number
        ("lots", 2, [b"09506000134352", b"LOT-A1"]),  # same strings, another record type
        ("lots", 1, [b"ab", b"c"]),
        ("lots", 1, [b"a", b"bc"]),  # framing: differs from ("ab", "c")
        ("lots", 3, []),
        ("lots", 3, [b""]),  # one empty field is not no field
        ("ehr", 1, [bytes.fromhex("00ff")]),
    ]
    record_keys = [
        {
            "contract": c,
            "record_type": t,
            "fields_hex": [f.hex() for f in fs],
            "framed": framed(c, t, fs).hex(),
            "key": hashlib.sha256(framed(c, t, fs)).hexdigest(),
        }
        for c, t, fs in key_cases
    ]
    lot = hashlib.sha256(framed("lots", 1, [b"09506000134352", b"LOT-A1"])).digest()
    status = hashlib.sha256(framed("lots", 2, [b"09506000134352", b"LOT-A1"])).digest()
    absent = hashlib.sha256(framed("lots", 1, [b"09506000134352", b"LOT-B7"])).digest()
    # Crafted keys: two sharing their first 12 bits put a chain of one-sided nodes (EMPTY
    # siblings, clear bitmap bits) on their path.
    a = bytes.fromhex("abc0") + bytes(30)
    b = bytes.fromhex("abc8") + bytes(30)
    c = bytes.fromhex("40") + bytes(31)
    near = bytes.fromhex("abc4") + bytes(30)  # absent: its path ends at a's leaf
    far = bytes.fromhex("ab00") + bytes(30)  # absent: leaves a's and b's path, empty slot
    trees = [
        tree("empty", [], [lot]),
        tree("one record", [(lot, b'{"gtin":"09506000134352","lot":"LOT-A1"}')], [lot, absent]),
        tree(
            "two records of one lot",
            [(lot, b"identity"), (status, b"released")],
            [lot, status, absent],
        ),
        tree(
            "a chain of one-sided nodes",
            [(a, b"a"), (b, b"b"), (c, b"c")],
            [a, b, c, near, far, bytes(32)],
        ),
    ]
    some = root([(lot, b"identity"), (status, b"released")])
    entries = [
        {"records": 0, "covers": 0, "root": EMPTY.hex()},
        {"records": 2, "covers": 41, "root": some.hex()},
    ]
    for e in entries:
        e["entry"] = (
            bytes([0x04, 0x01])
            + struct.pack(">QQ", e["records"], e["covers"])
            + bytes.fromhex(str(e["root"]))
        ).hex()
    print(
        json.dumps(
            {
                "comment": "Made by tests/vectors/make_state_tree.py from docs/protocol.md"
                " ('State tree') with hashlib and struct only.",
                "tags": {
                    "leaf": "PharmaSync/state/leaf",
                    "node": "PharmaSync/state/node",
                },
                "record_keys": record_keys,
                "trees": trees,
                "state_root_entries": entries,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

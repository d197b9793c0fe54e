"""Regenerate the golden vectors of the cosigned receipt (cosigned-receipt-v1.json).

    python tests/vectors/make_cosigned_receipt.py

Built straight from docs/protocol.md ("Cosigned receipt"), C2SP signed-note,
tlog-checkpoint and tlog-cosignature, and RFC 9162's definitions of PATH and PROOF, with
hashlib, base64 and the `cryptography` package's Ed25519, NOT through gateway/note.py,
gateway/checkpoint.py, gateway/merkle.py or gateway/cosigned_receipt.py, so they are
independent known answers for them. Seeds are SHA-256 of fixed labels; Ed25519 signatures
are deterministic; the cosignature time is fixed. The batch entry is batch-v1.json's header
0. Rerun only when the format changes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = Path(__file__).resolve().parent
ORIGIN = "golden.example/ledger"
WITNESS = "golden.example/witness"
TIME = 1767225600  # 2026-01-01T00:00:00Z, the cosignature's timestamp
INDEX, SIZE = 2, 7  # the batch entry's log index; the cosigned checkpoint's size


def label(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def key(seed_label: str) -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.from_private_bytes(label(seed_label))
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


def vkey(name: str, key_type: int, public: bytes) -> str:
    b64 = base64.b64encode(bytes([key_type]) + public).decode()
    return f"{name}+{key_id(name, key_type, public).hex()}+{b64}"


def line(name: str, kid: bytes, signature: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(kid + signature).decode()}\n"


def leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)  # the largest power of two < n


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH."""
    if len(d) == 1:
        return leaf(d[0])
    k = split(len(d))
    return node(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = split(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = split(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def checkpoint_text(size: int, root: bytes) -> str:
    return f"{ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"


def signed(text: str, log: Ed25519PrivateKey, log_public: bytes) -> str:
    return text + "\n" + line(ORIGIN, key_id(ORIGIN, 0x01, log_public), log.sign(text.encode()))


def main() -> None:
    log, log_public = key("pharmasync golden log")
    witness, witness_public = key("pharmasync golden witness")
    header = bytes.fromhex(json.loads((HERE / "batch-v1.json").read_text())["headers"][0]["wire"])
    entries = [b"\x02" + label(f"golden entry {i}") for i in range(SIZE)]
    entries[INDEX] = b"\x01" + header
    first = signed(checkpoint_text(INDEX + 1, mth(entries[: INDEX + 1])), log, log_public)
    text = checkpoint_text(SIZE, mth(entries))
    message = f"cosignature/v1\ntime {TIME}\n{text}".encode()
    stamped = TIME.to_bytes(8, "big") + witness.sign(message)
    later = signed(text, log, log_public) + line(
        WITNESS, key_id(WITNESS, 0x04, witness_public), stamped
    )
    receipt = {
        "receipt": {
            "gateway": header[1:33].hex(),
            "seq": int.from_bytes(header[33:41], "big"),
            "header_hash": hashlib.sha256(header).hexdigest(),
            "log_index": INDEX,
            "checkpoint": first,
        },
        "cosigned": {
            "entry": entries[INDEX].hex(),
            "size": SIZE,
            "checkpoint": later,
            "inclusion": [h.hex() for h in path(INDEX, entries)],
            "consistency": [h.hex() for h in subproof(INDEX + 1, entries, True)],
        },
    }
    wrong_proof = copy.deepcopy(receipt)
    wrong_proof["cosigned"]["inclusion"][0] = hashlib.sha256(b"wrong").hexdigest()
    other_history = copy.deepcopy(receipt)
    other_history["receipt"]["checkpoint"] = signed(
        checkpoint_text(INDEX + 1, label("another history")), log, log_public
    )
    doc = {
        "description": "Golden vectors for the cosigned receipt (docs/protocol.md, 'Cosigned "
        "receipt'). Made by tests/vectors/make_cosigned_receipt.py (hashlib, base64, "
        "cryptography's Ed25519, RFC 9162 PATH/SUBPROOF written from the RFC), independent "
        "of gateway/. Log seed = SHA-256('pharmasync golden log'), witness seed = "
        "SHA-256('pharmasync golden witness'); entry i of the 7-entry log is 0x02 || "
        "SHA-256('golden entry <i>') except entry 2, batch-v1.json header 0.",
        "log_vkey": vkey(ORIGIN, 0x01, log_public),
        "witness_vkey": vkey(WITNESS, 0x04, witness_public),
        "valid": receipt,
        "invalid": [
            {"why": "a wrong inclusion proof hash", "step": "inclusion", "receipt": wrong_proof},
            {
                "why": "a receipt checkpoint the log signed over another history",
                "step": "consistency",
                "receipt": other_history,
            },
        ],
    }
    (HERE / "cosigned-receipt-v1.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {HERE / 'cosigned-receipt-v1.json'}")


if __name__ == "__main__":
    main()

"""Regenerate the golden vectors of the signed alarm acknowledgement (alarm-ack-v1.json).

    python tests/vectors/make_alarm_ack.py

Built straight from docs/protocol.md ("Signed alarm acknowledgement") with json, hashlib and
coincurve (libsecp256k1), NOT through gateway/alarm_ack.py, so they are independent known
answers for it. Keys and aux randomness are SHA-256 of fixed labels. Rerun only when the
format version changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import coincurve

HERE = Path(__file__).resolve().parent
TAG = b"PharmaSync/alarm-ack/v1"


def label(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def tagged(tag: bytes, msg: bytes) -> bytes:
    t = hashlib.sha256(tag).digest()
    return hashlib.sha256(t + t + msg).digest()


def vector(name: str, alarm: str, by: str, at: int) -> dict:
    owner = coincurve.PrivateKey(label(f"pharmasync golden alarm-ack signer {name}"))
    gateway = coincurve.PrivateKey(label("pharmasync golden gateway")).public_key_xonly.format()
    aux = label(f"aux alarm-ack {name}")
    # Canonical: sorted keys, no spaces, non-ASCII as \uXXXX (json.dumps defaults).
    canonical = (
        f'{{"alarm":"{alarm}","at":{at},"by":{json.dumps(by)},"gateway":"{gateway.hex()}","v":1}}'
    ).encode()
    message = tagged(TAG, canonical)
    signature = owner.sign_schnorr(message, aux)
    key = owner.public_key_xonly.format()
    wire = b'{"ack":%s,"key":"%s","signature":"%s"}' % (
        canonical,
        key.hex().encode(),
        signature.hex().encode(),
    )
    return {
        "name": name,
        "secret": owner.secret.hex(),
        "aux": aux.hex(),
        "fields": {"gateway": gateway.hex(), "alarm": alarm, "by": by, "at": at},
        "key": key.hex(),
        "canonical": canonical.decode(),
        "message": message.hex(),
        "signature": signature.hex(),
        "wire": wire.decode(),
    }


def main() -> None:
    vectors = [
        # 2 November 2026 12:00:00 UTC = 1793620800.
        vector("night-shift", "3f2a9c1e", "A. Jones", 1793620800),
        vector("non-ascii", "00c0ffee", 'Zoë Ångström "QA"', 1793624400),
    ]
    out = HERE / "alarm-ack-v1.json"
    out.write_text(json.dumps({"tag": TAG.decode(), "vectors": vectors}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Regenerate the golden vectors for the version-2 acknowledgement and the gateway
certificate (docs/protocol.md, "End-to-end acknowledgement").

    python tests/vectors/make_ack_golden.py   # rewrites ack-v2.json and gateway-cert-v1.json

Built straight from the document with struct, hashlib and coincurve (libsecp256k1), NOT
through device/ack.py or device/cert.py, so they are independent known answers. Keys and
aux randomness are SHA-256 of fixed labels; rerun only when a format version changes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import coincurve
from make_golden import label, tagged  # run as a script: this folder is on sys.path

HERE = Path(__file__).resolve().parent


def xonly(secret: bytes) -> bytes:
    return coincurve.PrivateKey(secret).public_key_xonly.format()


OWNER = label("pharmasync golden owner")
GATEWAY = label("pharmasync golden gateway")
BOX = label("pharmasync golden box cold-room")  # the reading-v1.json cold-room box


def certificate(site: str, not_before: int, not_after: int, name: str) -> dict:
    s = site.encode()
    body = (
        bytes([1])
        + xonly(OWNER)
        + xonly(GATEWAY)
        + struct.pack(">IIB", not_before, not_after, len(s))
        + s
    )
    aux = label(f"aux cert {name}")
    sig = coincurve.PrivateKey(OWNER).sign_schnorr(tagged(b"PharmaSync/gateway-cert/v1", body), aux)
    return {
        "name": name,
        "site": site,
        "not_before": not_before,
        "not_after": not_after,
        "aux": aux.hex(),
        "message": tagged(b"PharmaSync/gateway-cert/v1", body).hex(),
        "wire": (body + sig).hex(),
    }


def acknowledgement(ranges: list[tuple[int, int]], name: str) -> dict:
    body = bytes([2]) + xonly(GATEWAY)[:8] + bytes([len(ranges)])
    for first, last in ranges:
        body += struct.pack(">II", first, last)
    aux = label(f"aux ack {name}")
    msg = tagged(b"PharmaSync/ack/v2", xonly(BOX) + body)
    sig = coincurve.PrivateKey(GATEWAY).sign_schnorr(msg, aux)
    return {
        "name": name,
        "ranges": ranges,
        "aux": aux.hex(),
        "message": msg.hex(),
        "wire": (body + sig).hex(),
    }


def main() -> None:
    keys = {
        "owner_secret": OWNER.hex(),
        "owner_key": xonly(OWNER).hex(),
        "gateway_secret": GATEWAY.hex(),
        "gateway_key": xonly(GATEWAY).hex(),
        "box_secret": BOX.hex(),
        "box_key": xonly(BOX).hex(),
    }
    # 2 November 2026 12:00:00 UTC = 1793620800, valid 365 days.
    certs = {
        "description": "Golden gateway certificates v1 (docs/protocol.md). Made by "
        "tests/vectors/make_ack_golden.py (struct + hashlib + coincurve), independent of "
        "device/cert.py. owner = SHA-256('pharmasync golden owner'), gateway = "
        "SHA-256('pharmasync golden gateway'), aux = SHA-256('aux cert <name>').",
        **keys,
        "valid": [
            certificate("warehouse-1", 1793620800, 1793620800 + 365 * 86400, "warehouse-1"),
            certificate("k" * 64, 0, 0xFFFFFFFF, "longest-site"),
        ],
    }
    acks = {
        "description": "Golden acknowledgements v2 (docs/protocol.md). Made by "
        "tests/vectors/make_ack_golden.py (struct + hashlib + coincurve), independent of "
        "device/ack.py; box = the cold-room box of reading-v1.json, gateway as in "
        "gateway-cert-v1.json, aux = SHA-256('aux ack <name>').",
        **keys,
        "valid": [
            acknowledgement([(0, 41)], "one-range"),
            # Seqs 16-31 never existed (a reboot skipped the block); 45 was lost on the way.
            acknowledgement([(0, 15), (32, 44), (46, 60)], "reboot-gap-and-a-loss"),
            acknowledgement([(i * 10, i * 10 + 7) for i in range(21)], "twenty-one-ranges"),
        ],
    }
    for name, doc in (("gateway-cert-v1.json", certs), ("ack-v2.json", acks)):
        (HERE / name).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

"""Regenerate the golden vectors for the reading, batch-header and gateway-event formats.

    python tests/vectors/make_golden.py      # rewrites reading-v1.json, batch-v1.json and
                                             # event-v1.json

The bytes are built straight from docs/protocol.md with struct, hashlib and coincurve
(libsecp256k1), deliberately NOT through device/reading.py or gateway/batch.py, so the
vectors are independent known answers for those modules. Keys and aux randomness are
SHA-256 of fixed labels, so anyone can re-derive every byte. The files are committed;
rerun this only when the format version changes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import coincurve

HERE = Path(__file__).resolve().parent


def label(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def tagged(tag: bytes, msg: bytes) -> bytes:
    t = hashlib.sha256(tag).digest()
    return hashlib.sha256(t + t + msg).digest()


def schnorr(secret: bytes, msg32: bytes, aux: bytes) -> tuple[bytes, bytes]:
    key = coincurve.PrivateKey(secret)
    return key.public_key_xonly.format(), key.sign_schnorr(msg32, aux)


def make_reading(name: str, seq: int, t: int, temp: int, hum: int, flags: int) -> dict:
    secret, aux = label(f"pharmasync golden box {name}"), label(f"aux {name} {seq}")
    xonly = coincurve.PrivateKey(secret).public_key_xonly.format()
    body = bytes([1]) + xonly + struct.pack(">IIhHB", seq, t, temp, hum, flags)
    _, sig = schnorr(secret, tagged(b"PharmaSync/reading/v1", body), aux)
    return {
        "name": name,
        "secret": secret.hex(),
        "aux": aux.hex(),
        "fields": {"seq": seq, "time": t, "temperature": temp, "humidity": hum, "flags": flags},
        "key": xonly.hex(),
        "message": tagged(b"PharmaSync/reading/v1", body).hex(),
        "wire": (body + sig).hex(),
    }


def reading_vectors() -> dict:
    valid = [
        # 2 November 2026 12:00:00 UTC = 1793620800; 5.25 C, 45.00 % RH.
        make_reading("cold-room", 1, 1793620800, 525, 4500, 0),
        make_reading("freezer", 4294967295, 1793620860, -8000, 0, 0x04),  # -80 C, battery low
        make_reading("dropout", 7, 1793620920, 0, 0, 0x01),  # sensor error: no values
        make_reading("offline", 1000, 3600, 1499, 10000, 0x0A),  # unsynced clock + backlog
    ]
    base = bytes.fromhex(valid[0]["wire"])

    def patched(offset: int, new: bytes) -> str:
        return (base[:offset] + new + base[offset + len(new) :]).hex()

    # Each malformed case names the ReadingError.field that decode() must report.
    invalid = [
        {"why": "one byte short", "field": "length", "wire": base[:-1].hex()},
        {"why": "one byte long", "field": "length", "wire": (base + b"\x00").hex()},
        {"why": "empty", "field": "length", "wire": ""},
        {"why": "version 2", "field": "version", "wire": patched(0, b"\x02")},
        {"why": "version 0", "field": "version", "wire": patched(0, b"\x00")},
        {"why": "unknown flag 0x10", "field": "flags", "wire": patched(45, b"\x10")},
        {"why": "unknown flag 0x80", "field": "flags", "wire": patched(45, b"\x80")},
        {"why": "150.01 C", "field": "temperature", "wire": patched(41, struct.pack(">h", 15001))},
        {
            "why": "-100.01 C",
            "field": "temperature",
            "wire": patched(41, struct.pack(">h", -10001)),
        },
        {"why": "100.01 % RH", "field": "humidity", "wire": patched(43, struct.pack(">H", 10001))},
        {
            "why": "sensor error flag with a value",
            "field": "sensor error values",
            "wire": patched(45, b"\x01"),
        },
    ]
    # Well-formed but forged: decode() accepts them, verify() must return False.
    forged = [
        {"why": "temperature changed after signing", "wire": patched(41, struct.pack(">h", 526))},
        {"why": "seq changed after signing", "wire": patched(33, struct.pack(">I", 2))},
        {"why": "signature bit flipped", "wire": patched(109, bytes([base[109] ^ 1]))},
        {"why": "key of another box", "wire": patched(1, bytes.fromhex(valid[1]["key"]))},
    ]
    return {
        "description": "Golden vectors for the PharmaSync reading format v1 (docs/protocol.md). "
        "Made by tests/vectors/make_golden.py from struct + hashlib + coincurve, independent "
        "of device/reading.py. secret = SHA-256('pharmasync golden box <name>'), "
        "aux = SHA-256('aux <name> <seq>').",
        "valid": valid,
        "invalid": invalid,
        "forged": forged,
    }


def leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle Tree Hash, written straight from the definition."""
    if len(leaves) == 1:
        return leaf(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def batch_vectors(readings: dict) -> dict:
    secret = label("pharmasync golden gateway")
    wires = [bytes.fromhex(v["wire"]) for v in readings["valid"]]
    times = [struct.unpack(">I", w[37:41])[0] for w in wires]
    headers, prev = [], bytes(32)
    # Batch 0 holds readings 0-2, batch 1 holds reading 3; batch 1 chains to batch 0.
    for seq, members in enumerate((wires[:3], wires[3:])):
        ts = times[: len(members)] if seq == 0 else times[3:]
        xonly = coincurve.PrivateKey(secret).public_key_xonly.format()
        body = bytes([1]) + xonly + struct.pack(">Q", seq) + prev
        body += struct.pack(">III", len(members), min(ts), max(ts)) + mth(members)
        aux = label(f"aux batch {seq}")
        _, sig = schnorr(secret, tagged(b"PharmaSync/batch/v1", body), aux)
        wire = body + sig
        headers.append(
            {
                "seq": seq,
                "aux": aux.hex(),
                "readings": [w.hex() for w in members],
                "merkle_root": mth(members).hex(),
                "wire": wire.hex(),
                "header_hash": hashlib.sha256(wire).hexdigest(),
            }
        )
        prev = hashlib.sha256(wire).digest()
    return {
        "description": "Golden vectors for the PharmaSync batch header v1 (docs/protocol.md). "
        "Made by tests/vectors/make_golden.py (struct + hashlib + coincurve, recursive RFC 6962 "
        "MTH), independent of gateway/batch.py. Leaves are the reading-v1.json valid readings. "
        "secret = SHA-256('pharmasync golden gateway'), aux = SHA-256('aux batch <seq>').",
        "gateway_secret": secret.hex(),
        "gateway_key": coincurve.PrivateKey(secret).public_key_xonly.format().hex(),
        "headers": headers,
    }


def event_vectors() -> dict:
    """Gateway events (docs/protocol.md, "Gateway events"): canonical bytes by the `rfc8785`
    package (an RFC 8785 implementation independent of gateway/event.py)."""
    import rfc8785

    secret = label("pharmasync golden gateway")
    xonly = coincurve.PrivateKey(secret).public_key_xonly.format()
    bodies = [
        (
            "alarm-raised",
            {"alarm": "high", "zone": "Kühlraum C", "value_cc": 912, "detail": "9.12 °C > 8 °C"},
        ),
        (
            "box-status",
            {
                "box": label("pharmasync golden box cold-room").hex(),
                "zone": "C",
                "last_seen": 1793620800,
                "last_seq": 41,
                "backlog": 0,
                "battery_low": 0,
                "rejects": {"bad signature": 2, "stale seq": 1},
            },
        ),
        ("site-alarm", {"alarm": "spool", "state": "raised", "bytes": 1700000000}),
    ]
    events = []
    for seq, (kind, body) in enumerate(bodies):
        obj = {"gateway": xonly.hex(), "seq": seq, "time": 1793620800 + seq, "kind": kind}
        data = rfc8785.dumps(obj | {"body": body})
        aux = label(f"aux event {seq}")
        _, sig = schnorr(secret, tagged(b"PharmaSync/event/v1", data), aux)
        events.append(
            {
                "seq": seq,
                "aux": aux.hex(),
                "kind": kind,
                "body": body,
                "canonical": data.decode(),
                "message": tagged(b"PharmaSync/event/v1", data).hex(),
                "record": (sig + data).hex(),
            }
        )
    return {
        "description": "Golden vectors for PharmaSync gateway events v1 (docs/protocol.md). "
        "Made by tests/vectors/make_golden.py (rfc8785 + hashlib + coincurve), independent "
        "of gateway/event.py. record = signature || canonical; secret = SHA-256('pharmasync "
        "golden gateway'), aux = SHA-256('aux event <seq>').",
        "gateway_secret": secret.hex(),
        "gateway_key": xonly.hex(),
        "events": events,
    }


def main() -> None:
    readings = reading_vectors()
    for name, doc in (
        ("reading-v1.json", readings),
        ("batch-v1.json", batch_vectors(readings)),
        ("event-v1.json", event_vectors()),
    ):
        (HERE / name).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

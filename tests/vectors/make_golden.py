"""Regenerate the golden vectors for the reading, batch-header, gateway-event and contract
transaction formats.

    python tests/vectors/make_golden.py      # rewrites reading-v1.json, batch-v1.json,
                                             # event-v1.json and tx-v1.json

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


BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def did_key(secret: bytes) -> tuple[bytes, str]:
    """(compressed point, did:key) per the did:key spec: "did:key:z" + base58btc of the
    multicodec secp256k1-pub varint 0xe7 0x01 and the 33-byte compressed point."""
    point = coincurve.PrivateKey(secret).public_key.format(compressed=True)
    data = b"\xe7\x01" + point
    n, digits = int.from_bytes(data, "big"), ""
    while n:
        n, r = divmod(n, 58)
        digits = BASE58[r] + digits
    return point, "did:key:z" + "1" * (len(data) - len(data.lstrip(b"\0"))) + digits


def tx_vectors() -> dict:
    """Contract transactions v1 and their 0x03 log entries (docs/protocol.md, "Contract
    transaction v1"): canonical bytes by the `rfc8785` package, did:key and base58 written
    out above, independent of cloud/contracts/."""
    import rfc8785

    names = ("regulator", "manufacturer", "distributor")  # the distributor's point has odd y
    keys = {}
    for name in names:
        secret = label(f"pharmasync golden participant {name}")
        point, did = did_key(secret)
        keys[name] = {
            "secret": secret.hex(),
            "point": point.hex(),
            "xonly": point[1:].hex(),
            "did": did,
        }
    profile = {
        "low_cc": 200,
        "high_cc": 800,
        "delay_s": 1800,
        "cumulative_s": 7200,
        "hysteresis_cc": 50,
    }
    cases = [
        (
            "admit",
            "regulator",
            "participants",
            "admit",
            {
                "did": keys["manufacturer"]["did"],
                "role": "manufacturer",
                "name": "Nordpharma Kühl GmbH",
                "licence": {"authority": "BfArM", "number": "DE-MIA-0042"},
            },
        ),
        (
            "commission",
            "manufacturer",
            "lots",
            "commission",
            {
                "gtin": "09506000134352",
                "lot": "A1B2C3",
                "expiry": "271200",
                "quantity": 1200,
                "unit": "pack",
                "profile": profile,
                "note": "2\u20138 °C ❄ 💉",  # EN DASH, a BMP symbol, an astral emoji
            },
        ),
        ("receive", "distributor", "lots", "receive", {"shipment": "SHP-0001", "quantity": 600}),
    ]
    transactions = []
    for i, (case, signer, contract, tx_type, args) in enumerate(cases):
        secret = bytes.fromhex(keys[signer]["secret"])
        body = {
            "v": 1,
            "contract": contract,
            "type": tx_type,
            "signer": keys[signer]["did"],
            "time": 1793620800000 + 60000 * i,
            "nonce": label(f"nonce {case}")[:16].hex(),
            "args": args,
        }
        canonical = rfc8785.dumps(body)
        message = tagged(b"PharmaSync/tx/v1", canonical)
        aux, salt = label(f"aux tx {case}"), label(f"salt tx {case}")
        _, sig = schnorr(secret, message, aux)
        commitment = tagged(b"PharmaSync/tx-commit/v1", salt + canonical + sig)
        name = contract.encode()
        entry = bytes([0x03, 0x01, len(name)]) + name + commitment
        transactions.append(
            {
                "case": case,
                "signer": signer,
                "body": body,
                "aux": aux.hex(),
                "salt": salt.hex(),
                "canonical": canonical.decode(),
                "message": message.hex(),
                "sig": sig.hex(),
                "wire": rfc8785.dumps({"tx": body, "sig": sig.hex()}).decode(),
                "id": hashlib.sha256(canonical + sig).hexdigest(),
                "commitment": commitment.hex(),
                "entry": entry.hex(),
            }
        )
    return {
        "description": "Golden vectors for PharmaSync contract transactions v1 and their 0x03 "
        "log entries (docs/protocol.md). Made by tests/vectors/make_golden.py (rfc8785 + "
        "hashlib + coincurve, base58 written out), independent of cloud/contracts/; the args "
        "are examples of the format, each contract defines its own. "
        "secret = SHA-256('pharmasync golden participant <name>'), nonce = first 16 bytes of "
        "SHA-256('nonce <case>'), aux = SHA-256('aux tx <case>'), "
        "salt = SHA-256('salt tx <case>'), time = 1793620800000 + 60000 * position.",
        "participants": keys,
        "transactions": transactions,
    }


def public_proof_vectors() -> dict:
    """Public check proof bundles, version 3 (docs/protocol.md "Public check proof", "Record
    keys" and "State tree"): a lot's, a registered pack's (active) and the same pack's once
    dispensed, each against its own small state tree and log. Written from the docs with
    hashlib, struct, rfc8785 and cryptography's Ed25519, independent of cloud/ and gateway/."""
    import base64

    import rfc8785
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    gtin, lot, serial, since = "09506000134352", "L1", "SN0003", 1793620800000
    serials = sorted(f"SN{i:04d}" for i in range(7))
    stamp = 1793620800  # the log's own cosignature time (POSIX seconds)

    def framed(fields: list[str]) -> bytes:
        return b"".join(struct.pack(">I", len(f.encode())) + f.encode() for f in fields)

    def record_key(code: int, fields: list[str]) -> bytes:
        return hashlib.sha256(b"\x04lots" + bytes((code,)) + framed(fields)).digest()

    def grouped_key(code: int, fields: list[str]) -> bytes:
        group = hashlib.sha256(b"PharmaSync/state/group/v1" + framed(fields[:2])).digest()
        return group[:3] + record_key(code, fields)[3:]

    def leaf_hash(key: bytes, value: bytes) -> bytes:
        return tagged(b"PharmaSync/state/leaf", key + hashlib.sha256(value).digest())

    def node_hash(left: bytes, right: bytes) -> bytes:
        return tagged(b"PharmaSync/state/node", left + right)

    def bit(key: bytes, d: int) -> int:
        return (key[d >> 3] >> (7 - (d & 7))) & 1

    def smt_root(items: dict[bytes, bytes], d: int = 0) -> bytes:
        if not items:
            return bytes(32)
        if len(items) == 1:
            ((k, v),) = items.items()
            return leaf_hash(k, v)
        halves = ({k: v for k, v in items.items() if bit(k, d) == b} for b in (0, 1))
        return node_hash(*(smt_root(h, d + 1) for h in halves))

    def smt_proof(items: dict[bytes, bytes], key: bytes) -> tuple[bytes | None, list[bytes]]:
        """(the leaf's key ‖ value hash where the path ends, or None: empty; siblings)."""
        siblings, d = [], 0
        while len(items) > 1:
            ours = {k: v for k, v in items.items() if bit(k, d) == bit(key, d)}
            siblings.append(smt_root({k: v for k, v in items.items() if k not in ours}, d + 1))
            items, d = ours, d + 1
        if not items:
            return None, siblings
        ((k, v),) = items.items()
        return k + hashlib.sha256(v).digest(), siblings

    def mth_path(m: int, leaves: list[bytes]) -> list[bytes]:
        """RFC 6962 section 2.1.1 PATH(m, D[n]), leaf hashes first."""
        if len(leaves) == 1:
            return []
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        if m < k:
            return [*mth_path(m, leaves[:k]), mth(leaves[k:])]
        return [*mth_path(m - k, leaves[k:]), mth(leaves[:k])]

    def prefix_bits(a: bytes, b: bytes) -> int:
        x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
        return 256 - x.bit_length()

    def short(text: str) -> bytes:
        return bytes((len(text.encode()),)) + text.encode()

    seed = label("pharmasync golden public proof log")
    log = Ed25519PrivateKey.from_private_bytes(seed)
    public = log.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    origin = "ledger.example/pharmasync"

    def key_id(kind: int) -> bytes:
        return hashlib.sha256(origin.encode() + b"\n" + bytes((kind,)) + public).digest()[:4]

    vkey = f"{origin}+{key_id(1).hex()}+" + base64.b64encode(b"\x01" + public).decode()
    leaves = [s.encode() for s in serials]
    registration = {"count": len(serials), "root": mth(leaves).hex(), "since": since}
    profile = {"low_cc": 200, "high_cc": 800, "delay_consecutive_s": 900}
    lot_value = {"gtin": gtin, "lot": lot, "expiry": "2030-12-31", "unit": "pack"}
    lot_value |= {"profile": profile, "manufacturer": "did:key:zQ3shGolden", "since": since}
    quality = {"status": "released", "source": "commission", "reason": "commission"}
    quality |= {"since": since}
    keys = {
        1: grouped_key(1, [gtin, lot]),
        2: grouped_key(2, [gtin, lot]),
        3: grouped_key(3, [gtin, lot]),
        12: grouped_key(12, [gtin, lot]),
        14: grouped_key(14, [gtin, lot, "1"]),
        15: record_key(15, [gtin, serial]),
    }

    def case(name: str, pack: bool, dispensed: bool) -> dict:
        values = {1: rfc8785.dumps(lot_value), 2: rfc8785.dumps(quality)}
        values[14] = rfc8785.dumps(registration)
        if dispensed:
            values[15] = rfc8785.dumps({"lot": lot, "status": "dispensed"})
        items = {keys[c]: v for c, v in values.items()}
        fillers = {label(f"filler {name} {i}"): label(f"value {i}")[:8] for i in range(60)}
        items |= fillers
        state_root = smt_root(items)
        entry = struct.pack(">BBQQ", 4, 1, len(items), 3) + state_root
        log_entries = [label(f"log entry {i}") for i in range(4)] + [entry]
        index = len(log_entries) - 1
        inclusion = mth_path(index, log_entries)
        text = f"{origin}\n{index + 1}\n{base64.b64encode(mth(log_entries)).decode()}\n"
        signature = key_id(1) + log.sign(text.encode())
        cosigned = f"cosignature/v1\ntime {stamp}\n{text}".encode()
        cosignature = key_id(4) + struct.pack(">Q", stamp) + log.sign(cosigned)
        lines = [signature, cosignature]
        note = text + "\n" + "".join(f"— {origin} {base64.b64encode(x).decode()}\n" for x in lines)
        codes = [1, 2, 3, 12] + ([14, 15] if pack else [])
        out = bytearray((3, 3 if pack else 0)) + gtin.encode() + short(lot)
        if pack:
            at = serials.index(serial)
            out += short(serial) + b"\x00" + struct.pack(">III", 1, at, len(serials))
            path = mth_path(at, leaves)
            out += bytes((len(path),)) + b"".join(path)
        out += struct.pack(">Q", index) + entry + bytes((len(inclusion),)) + b"".join(inclusion)
        out += b"\x00\x00" + short(origin) + bytes((len(lines),))
        out += b"".join(bytes((len(x),)) + x for x in lines)
        out += bytes((len(codes),))
        proofs = [smt_proof(items, keys[c]) for c in codes]
        depths = [len(p[1]) for p in proofs]
        for j, code in enumerate(codes):
            value = values.get(code, b"")
            out += bytes((code,)) + struct.pack(">H", len(value)) + value
            end, siblings = proofs[j]
            if end is None:
                out += b"\x00"
            elif end == keys[code] + hashlib.sha256(value).digest():
                out += b"\x02"
            else:
                out += b"\x01" + end
            best = (0, False)  # (s, parts) from the earlier record sharing most of the path
            for i in range(j):
                common = prefix_bits(keys[codes[i]], keys[code])
                s = min(common, depths[i], depths[j], 255)
                parts = s == common and s < min(depths[i], depths[j], 255)
                best = max(best, (s, parts))
            m = best[0] + best[1]
            rest = siblings[m:]
            bitmap = sum(1 << (len(rest) - 1 - k) for k, h in enumerate(rest) if h != bytes(32))
            width = (len(rest) + 7) // 8
            out += struct.pack(">HB", depths[j], m)
            out += (bitmap << (8 * width - len(rest))).to_bytes(width, "big")
            out += b"".join(h for h in rest if h != bytes(32))
        return {
            "case": name,
            "scanned": {"gtin": gtin, "lot": lot, "serial": serial if pack else None},
            "records": {str(c): values[c].decode() for c in sorted(values)},
            "keys": {str(c): keys[c].hex() for c in codes},
            "filler_seed": f"key SHA-256('filler {name} <i>'), value SHA-256('value <i>')[:8],"
            " i < 60",
            "state_root": state_root.hex(),
            "entry": entry.hex(),
            "checkpoint": note,
            "bundle": bytes(out).hex(),
        }

    return {
        "description": "Golden vectors for the public check proof bundle, version 3 (docs/"
        "protocol.md 'Public check proof'): a lot's, a registered pack's (active: its pack "
        "record proven absent) and the same pack dispensed. Made by tests/vectors/make_golden"
        ".py from the docs (hashlib, struct, rfc8785, cryptography), independent of cloud/. "
        "The log's Ed25519 seed is SHA-256('pharmasync golden public proof log'); the log "
        "holds SHA-256('log entry <i>') for i < 4, then the 0x04 entry (covers 3).",
        "log_vkey": vkey,
        "registration_serials": serials,
        "bundles": [
            case("lot", False, False),
            case("pack", True, False),
            case("pack-dispensed", True, True),
        ],
    }


def main() -> None:
    readings = reading_vectors()
    for name, doc in (
        ("reading-v1.json", readings),
        ("batch-v1.json", batch_vectors(readings)),
        ("event-v1.json", event_vectors()),
        ("tx-v1.json", tx_vectors()),
        ("public-proof-v3.json", public_proof_vectors()),
    ):
        (HERE / name).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

"""Regenerate the golden vectors for the reading, batch-header, gateway-event and contract
transaction formats, and the counter's: pack registrations, bulk envelopes, GS1 scans,
public proof bundles.

    python tests/vectors/make_golden.py      # rewrites reading-v1.json, batch-v1.json,
                                             # event-v1.json, tx-v1.json,
                                             # registration-v1.json, bulk-envelope-v1.json
                                             # gs1-scan-v1.json and public-proof-v3.json

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
from typing import Any

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


# -- the counter: pack registrations, bulk envelopes, GS1 scans ------------------------------
# Written from docs/protocol.md ("Pack registrations", "The envelope (HTTP body)", "GS1 scans")
# without cloud/contracts: the registration's root by mth() above, its audit paths by RFC 9162
# §2.1.3.1's recursive PATH, envelopes by rfc8785, element strings and URIs by string joins.

GOLDEN_GTIN = "09506000134352"  # GS1's own example GTIN (Digital Link examples)


def audit_path(leaves: list[bytes], m: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) written from the definition, leaf side first."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*audit_path(leaves[:k], m), mth(leaves[k:])]
    return [*audit_path(leaves[k:], m - k), mth(leaves[:k])]


def registration_vectors() -> dict:
    """`lots` `serialize`'s public registration record (type 14): the RFC 6962 root over the
    serials sorted by their bytes, and each serial's audit path."""
    from make_state_tree import framed  # the state tree's record-key framing, same script dir

    cases = [
        # (case, lot, serials in the order a manufacturer sends them)
        ("four", "A1B2C3", ["XYZ", "ABC123", "a-1", "B"]),  # upper case sorts before lower
        ("one", "A1B2C3", ["0001"]),  # the lot's second registration: n = 2
        ("seven", "L2", ["S7", "S10", "S1", "s1", "S%", "S-2", "S_3"]),  # "S10" < "S7"
    ]
    numbers: dict[str, int] = {}
    out = []
    for case, lot, serials in cases:
        numbers[lot] = n = numbers.get(lot, 0) + 1
        ordered = sorted(serials, key=str.encode)
        leaves = [s.encode() for s in ordered]
        key_fields = [GOLDEN_GTIN.encode(), lot.encode(), str(n).encode()]
        # A lot's public records share a group prefix (docs/protocol.md, "Grouped keys").
        group = hashlib.sha256(
            b"PharmaSync/state/group/v1"
            + b"".join(len(f).to_bytes(4, "big") + f for f in key_fields[:2])
        ).digest()
        out.append(
            {
                "case": case,
                "gtin": GOLDEN_GTIN,
                "lot": lot,
                "number": n,
                "serials": serials,
                "sorted": ordered,
                "record_key": (
                    group[:3] + hashlib.sha256(framed("lots", 14, key_fields)).digest()[3:]
                ).hex(),
                "count": len(leaves),
                "leaf_hashes": [leaf(x).hex() for x in leaves],
                "root": mth(leaves).hex(),
                "proofs": [
                    {"serial": s, "index": i, "path": [h.hex() for h in audit_path(leaves, i)]}
                    for i, s in enumerate(ordered)
                ],
            }
        )
    return {
        "description": "Golden vectors for a pack registration (docs/protocol.md, 'Pack "
        "registrations'): record key grouped_key('lots', 14, gtin, lot, n) ('Grouped keys'), "
        "count, and the RFC "
        "6962 root over the serials sorted by their UTF-8 bytes, leaf = the serial's bytes, "
        "with each serial's RFC 9162 audit path (leaf side first). Made by "
        "tests/vectors/make_golden.py (hashlib, recursive MTH and PATH), independent of "
        "cloud/contracts/. The cases are registered in order, so a lot's second one is n = 2.",
        "registrations": out,
    }


BULK_LIMIT = 4 * 1024 * 1024
ENVELOPE_LIMIT = 64 * 1024


def bulk_serial(i: int) -> str:
    return f"PS{i:018d}"  # 20 characters, the most AI 21 allows


def bulk_envelope_vectors() -> dict:
    """Bulk envelopes (`lots` `serialize` and `split`, up to 4 MiB) and the 64 KiB limit of
    every other type, as bytes on the wire (padded with JSON whitespace to a size)."""
    import rfc8785

    secret = label("pharmasync golden participant manufacturer")
    _, did = did_key(secret)
    many = [bulk_serial(i) for i in range(100_000)]
    profile = {"low_cc": 200, "high_cc": 800, "delay_s": 1800, "cumulative_s": 7200,
               "hysteresis_cc": 50}  # fmt: skip
    cases = [
        # (case, type, args, size to pad to or None, 413 expected, wire kept in full)
        ("serialize-three", "serialize",
         {"gtin": GOLDEN_GTIN, "lot": "A1B2C3", "serials": ["XYZ", "ABC123", "a-1"]},
         None, False),
        ("split-with-packs", "split",
         {"gtin": GOLDEN_GTIN, "lot": "A1B2C3",
          "children": [{"lot": "A1B2C3-1", "quantity": 2}, {"lot": "A1B2C3-2", "quantity": 1}],
          "serials": {"A1B2C3-1": ["ABC123", "XYZ"], "A1B2C3-2": ["a-1"]}},
         None, False),
        ("serialize-100000-at-4MiB", "serialize",
         {"gtin": GOLDEN_GTIN, "lot": "BULK1", "serials": many}, BULK_LIMIT, False),
        ("serialize-100000-one-byte-over", "serialize",
         {"gtin": GOLDEN_GTIN, "lot": "BULK1", "serials": many}, BULK_LIMIT + 1, True),
        ("commission-at-64KiB", "commission",
         {"gtin": GOLDEN_GTIN, "lot": "A1B2C3", "expiry": "271200", "quantity": 1200,
          "unit": "pack", "profile": profile}, ENVELOPE_LIMIT, False),
        ("commission-one-byte-over", "commission",
         {"gtin": GOLDEN_GTIN, "lot": "A1B2C3", "expiry": "271200", "quantity": 1200,
          "unit": "pack", "profile": profile}, ENVELOPE_LIMIT + 1, True),
    ]  # fmt: skip
    out = []
    for case, tx_type, args, pad_to, too_big in cases:
        body = {
            "v": 1,
            "contract": "lots",
            "type": tx_type,
            "signer": did,
            "time": 1793620800000,
            "nonce": label(f"nonce {case}")[:16].hex(),
            "args": args,
        }
        canonical = rfc8785.dumps(body)
        aux = label(f"aux tx {case}")
        _, sig = schnorr(secret, tagged(b"PharmaSync/tx/v1", canonical), aux)
        unpadded = rfc8785.dumps({"tx": body, "sig": sig.hex()})
        wire = unpadded if pad_to is None else unpadded + b" " * (pad_to - len(unpadded))
        vector = {
            "case": case,
            "type": tx_type,
            "aux": aux.hex(),
            "nonce": body["nonce"],
            "wire_bytes": len(wire),
            "wire_sha256": hashlib.sha256(wire).hexdigest(),
            "refused": {"status": 413, "reason": "json"} if too_big else None,
            "sig": sig.hex(),
        }
        if args.get("serials") is many:
            vector["args"] = "serials: PS + i as 18 digits, i = 0..99999 (bulk_serial)"
        else:
            vector["wire"] = unpadded.decode()  # before any padding
        if pad_to is not None:
            vector["padded_with_spaces_to"] = pad_to
        if not too_big:
            vector["canonical_sha256"] = hashlib.sha256(canonical).hexdigest()
            vector["id"] = hashlib.sha256(canonical + sig).hexdigest()
        out.append(vector)
    return {
        "description": "Golden vectors for transaction envelopes of the bulk types (docs/"
        "protocol.md, 'The envelope (HTTP body)'): lots serialize and split up to 4,194,304 "
        "bytes, every other type up to 65,536; one byte over is 413 json. Made by "
        "tests/vectors/make_golden.py (rfc8785 + hashlib + coincurve), independent of "
        "cloud/contracts/tx.py. Signer: the tx-v1.json manufacturer (secret = SHA-256('pharmasync"
        " golden participant manufacturer')), time 1793620800000, nonce = first 16 bytes of "
        "SHA-256('nonce <case>'), aux = SHA-256('aux tx <case>'). wire = RFC 8785 of {tx, sig}, "
        "then spaces up to padded_with_spaces_to; the 100,000-serial wires are given by their "
        "recipe, size and SHA-256.",
        "signer": did,
        "envelopes": out,
    }


GS = "\x1d"  # FNC1 in a raw element string


def percent(value: str, safe: str = "") -> str:
    """RFC 3986 percent-encoding of every character not unreserved (and not in `safe`)."""
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~" + safe
    return "".join(c if c in unreserved else "".join(f"%{b:02X}" for b in c.encode())
                   for c in value)  # fmt: skip


def gs1_scan_vectors() -> dict:
    """What a scanner reads from a pack (raw element strings with a symbology identifier
    and GS, the human-readable form, Digital Link URIs) and the fields each means; the
    builders' output for the same fields; refusals naming the AI or URI part."""
    today = "2026-12-02"  # six-digit dates are read on this day
    g = GOLDEN_GTIN

    def fields(
        lot: str | None = None,
        expiry: str | None = None,
        date: str | None = None,
        serial: str | None = None,
        other: Any = (),
    ) -> dict:
        return {"gtin": g, "lot": lot, "expiry": expiry, "expiry_date": date,
                "serial": serial, "other": [list(p) for p in other]}  # fmt: skip

    pack = fields("ABC123", "270300", "2027-03-31", "XYZ")  # day 00: the month's last day
    element_strings = [
        ("GS1 DataMatrix, the usual pack", f"]d2" f"01{g}17270300" f"10ABC123{GS}21XYZ", pack),
        ("no symbology identifier", f"01{g}17270300" f"10ABC123{GS}21XYZ", pack),
        ("FNC1 first only", f"{GS}01{g}17270300" f"10ABC123{GS}21XYZ", pack),
        ("GS1 QR Code", f"]Q3" f"01{g}17270300" f"10ABC123{GS}21XYZ", pack),
        ("GS1-128, other order, a tolerated GS after a fixed-length value, a PZN",
         f"]C1{GS}01{g}{GS}21S/N-1{GS}71011234567{GS}10L-1{GS}17271231",
         fields("L-1", "271231", "2027-12-31", "S/N-1", [("710", "11234567")])),
        ("GS1 DataBar, lot last", f"]e0" f"01{g}17280200" f"10LOT-9",
         fields("LOT-9", "280200", "2028-02-29")),
        ("human-readable, the usual pack", f"(01){g}(17)270300(10)ABC123(21)XYZ", pack),
        ("human-readable, CPV and a count", f"(01){g}(21)7(22)V2(30)12",
         fields(serial="7", other=[("22", "V2"), ("30", "12")])),
    ]  # fmt: skip

    def link(
        link_type: str | None = None,
        extra: Any = (),
        base: str = "",
        cpv: str | None = None,
        **kw: Any,
    ) -> dict:
        out = fields(**kw)
        out.update(cpv=cpv, link_type=link_type, extra=[list(p) for p in extra], base=base)
        return out

    resolver = "https://id.gs1.org"
    pip = "gs1:pip"
    pack_link = link(pip, base=resolver, lot="ABC123", expiry="270300", date="2027-03-31",
                     serial="XYZ")  # fmt: skip
    digital_links = [
        ("the pack on GS1's resolver",
         f"{resolver}/01/{g}/10/ABC123/21/XYZ?17=270300&linkType={pip}", pack_link,
         f"{resolver}/01/{g}/10/ABC123/21/XYZ?17=270300&linkType={pip}"),
        ("bare path, GTIN-13, escapes, linkType first, an extra parameter",
         f"/01/{g[1:]}/10/A%2FB/21/S%25?linkType={pip}&17=270300&foo=bar",
         link(pip, [("foo", "bar")], "", lot="A/B", expiry="270300", date="2027-03-31",
              serial="S%"),
         f"/01/{g}/10/A%2FB/21/S%25?17=270300&linkType={pip}"),
        ("a host's own path prefix and a CPV",
         f"https://example.com/resolver/01/{g}/22/V2/10/L1/21/S1",
         link(None, (), "https://example.com/resolver", cpv="V2", lot="L1", serial="S1",
              other=[("22", "V2")]),
         f"https://example.com/resolver/01/{g}/22/V2/10/L1/21/S1"),
        ("Digital Link 1.1 short names", f"{resolver}/gtin/{g}/lot/ABC123/ser/XYZ",
         link(None, (), resolver, lot="ABC123", serial="XYZ"),
         f"{resolver}/01/{g}/10/ABC123/21/XYZ"),
    ]  # fmt: skip

    builds = []
    for lot, expiry, serial in (("ABC123", "270300", "XYZ"), ("A/B+1", "271231", "S%1")):
        raw = f"01{g}17{expiry}10{lot}{GS}21{serial}"
        hri = f"(01){g}(17){expiry}(10){lot}(21){serial}"
        uri = f"{resolver}/01/{g}/10/{percent(lot)}/21/{percent(serial)}?17={expiry}"
        builds.append({"gtin": g, "lot": lot, "expiry": expiry, "serial": serial,
                       "raw": raw, "hri": hri, "pack_uri": uri,
                       "lot_uri": f"{resolver}/01/{g}/10/{percent(lot)}"})  # fmt: skip

    refused = [
        ("]d1 is DataMatrix without GS1 data", f"]d1" f"01{g}10ABC123", "symbology"),
        ("GTIN check digit wrong", f"01{g[:-1]}3" "10ABC123", "01"),
        ("an AI the table does not hold", f"01{g}99ABC", "99"),
        ("a missing GS runs the lot into the serial", f"01{g}10ABCDEFGHIJKLMNO21XYZ0123456", "10"),
        ("day 32", f"01{g}17270332", "17"),
        ("two lots", f"01{g}10A{GS}10B", "10"),
        ("no GTIN", "10ABC123", "01"),
        ("01 with 02", f"01{g}02{g}", "02"),
        ("longer than 4,096 characters", f"01{g}10" + "A" * 4096, "scan"),
        ("human-readable lot over 20", f"(01){g}(10){'A' * 21}", "10"),
        ("Digital Link key qualifiers out of order", f"{resolver}/01/{g}/21/XYZ/10/ABC123",
         "path"),
        ("Digital Link lot in the query", f"{resolver}/01/{g}?10=ABC123", "query"),
        ("Digital Link bad escape", f"{resolver}/01/{g}/10/A%2", "path"),
        ("Digital Link ftp", f"ftp://id.gs1.org/01/{g}", "uri"),
    ]  # fmt: skip
    return {
        "description": "Golden vectors for GS1 scans (docs/protocol.md, 'GS1 scans: element "
        "strings and Digital Link'): raw element strings (symbology identifier, GS = FNC1 = "
        "U+001D), the human-readable form and Digital Link URIs, with the fields each means "
        "(expiry as carried and as a date, read on `today`), the canonical URI, the builders' "
        "output for given fields, and refusals naming the AI or URI part. Made by "
        "tests/vectors/make_golden.py from the specification's rules, independent of "
        "cloud/contracts/gs1*.py and digital_link.py.",
        "today": today,
        "element_strings": [{"why": w, "scan": s, "fields": f} for w, s, f in element_strings],
        "digital_links": [
            {"why": w, "uri": u, "fields": f, "canonical": c} for w, u, f, c in digital_links
        ],
        "builds": builds,
        "refused": [
            {"why": w, "scan": s, "part": p, "form": "uri" if "Digital" in w else "element"}
            for w, s, p in refused
        ],
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
        ("registration-v1.json", registration_vectors()),
        ("bulk-envelope-v1.json", bulk_envelope_vectors()),
        ("gs1-scan-v1.json", gs1_scan_vectors()),
        ("public-proof-v3.json", public_proof_vectors()),
    ):
        (HERE / name).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

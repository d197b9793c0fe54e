"""End-to-end acknowledgements, version 2 (ranges, signed by a certified gateway) and the
version 1 kept for firmware 0.1: golden vectors, forgeries, malformed input, BLE fit."""

from __future__ import annotations

import json
import struct

import pytest

from device import ack, ble, schnorr
from tests.conftest import GOLDEN

VECTORS = json.loads((GOLDEN / "ack-v2.json").read_text())
BOX = bytes.fromhex(VECTORS["box_key"])
GATEWAY_SECRET = bytes.fromhex(VECTORS["gateway_secret"])
GATEWAY = bytes.fromhex(VECTORS["gateway_key"])
KEYS = {ack.gateway_id(GATEWAY): GATEWAY}


@pytest.mark.parametrize("v", VECTORS["valid"], ids=lambda v: v["name"])
def test_golden_acks_encode_and_decode_byte_for_byte(v: dict) -> None:
    ranges = [tuple(r) for r in v["ranges"]]
    wire = bytes.fromhex(v["wire"])
    assert ack.encode(ranges, BOX, GATEWAY_SECRET, bytes.fromhex(v["aux"])) == wire
    assert ack.decode(wire, BOX, KEYS) == ranges
    assert len(wire) == 74 + 8 * len(ranges)


def test_the_longest_ack_fits_one_ble_write() -> None:
    longest = bytes.fromhex(VECTORS["valid"][-1]["wire"])
    assert len(longest) == ack.MAX_SIZE == 242
    assert len(ble.encode_ack(longest)) == 243 <= ble.WRITE_MAX == 244
    with pytest.raises(ValueError, match="ranges: got 22"):
        ack.encode([(i * 3, i * 3) for i in range(22)], BOX, GATEWAY_SECRET)


def test_forged_acks_are_refused_with_the_reason() -> None:
    good = ack.encode([(0, 9)], BOX, GATEWAY_SECRET)
    other = bytes(31) + b"\x0a"
    with pytest.raises(ack.AckError, match="no verified certificate"):
        ack.decode(ack.encode([(0, 9)], BOX, other), BOX, KEYS)  # an uncertified gateway
    impostor = bytearray(ack.encode([(0, 9)], BOX, other))
    impostor[1:9] = ack.gateway_id(GATEWAY)  # claims to be the certified gateway
    with pytest.raises(ack.AckError, match="signature"):
        ack.decode(bytes(impostor), BOX, KEYS)
    with pytest.raises(ack.AckError, match="signature"):
        ack.decode(good, schnorr.pubkey(bytes(31) + b"\x06"), KEYS)  # meant for another box
    widened = bytearray(good)
    struct.pack_into(">I", widened, 14, 10**6)  # last seq changed, signature kept
    with pytest.raises(ack.AckError, match="signature"):
        ack.decode(bytes(widened), BOX, KEYS)
    with pytest.raises(ack.AckError, match="no verified certificate"):
        ack.decode(good, BOX, {})  # no certificate verified yet
    assert ack.decode(good, BOX, None) == [(0, 9)]  # --insecure-acks: believed unchecked


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        (lambda b: b[:-1], "range count"),
        (lambda b: b[:81], "length"),
        (lambda b: b + bytes(8), "range count"),
        (lambda b: b"\x01" + b[1:], "version"),
        (lambda b: b[:9] + b"\x00" + b[10:], "range count"),
        (lambda b: b[:10] + struct.pack(">II", 9, 0) + b[18:], "range 0"),
        (lambda b: b[:18] + struct.pack(">II", 10, 12) + b[26:], "range 1"),  # touches range 0
        (lambda b: b"", "length"),
        (lambda b: bytes(4), "length"),  # a version-1 ack
    ],
)
def test_malformed_acks_name_the_field(patch, why: str) -> None:
    wire = ack.encode([(0, 9), (12, 20)], BOX, GATEWAY_SECRET)
    with pytest.raises(ack.AckError, match=why):
        ack.decode(patch(wire), BOX, KEYS)


def test_version_1_acks_for_old_firmware() -> None:
    assert ack.decode_v1(ack.encode_v1(41), BOX) == 41
    signed = ack.encode_v1(41, BOX, GATEWAY_SECRET)
    assert len(signed) == ack.V1_SIGNED_SIZE
    assert ack.decode_v1(signed, BOX, GATEWAY) == 41
    with pytest.raises(ack.AckError, match="signature: got none"):
        ack.decode_v1(ack.encode_v1(41), BOX, GATEWAY)

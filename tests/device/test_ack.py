"""End-to-end acknowledgements: plain, signed, forged."""

from __future__ import annotations

import pytest

from device import ack, schnorr

BOX = schnorr.pubkey(bytes(31) + b"\x05")
GATEWAY_SECRET = bytes(31) + b"\x09"
GATEWAY = schnorr.pubkey(GATEWAY_SECRET)


def test_plain_and_signed_acks_round_trip() -> None:
    assert ack.decode(ack.encode(41), BOX) == 41
    signed = ack.encode(41, BOX, GATEWAY_SECRET)
    assert len(signed) == ack.SIGNED_SIZE
    assert ack.decode(signed, BOX, GATEWAY) == 41


def test_a_box_with_a_gateway_key_refuses_unsigned_and_forged_acks() -> None:
    with pytest.raises(ack.AckError, match="signature: got none"):
        ack.decode(ack.encode(41), BOX, GATEWAY)
    forged = ack.encode(41, BOX, bytes(31) + b"\x0a")  # signed by someone else
    with pytest.raises(ack.AckError, match="not valid"):
        ack.decode(forged, BOX, GATEWAY)
    other_box = ack.encode(41, schnorr.pubkey(bytes(31) + b"\x06"), GATEWAY_SECRET)
    with pytest.raises(ack.AckError, match="not valid"):
        ack.decode(other_box, BOX, GATEWAY)  # an ack meant for another box
    replayed_higher = bytearray(ack.encode(41, BOX, GATEWAY_SECRET))
    replayed_higher[3] = 0xFF  # seq changed, signature kept
    with pytest.raises(ack.AckError):
        ack.decode(bytes(replayed_higher), BOX, GATEWAY)


@pytest.mark.parametrize("size", [0, 3, 5, 67, 69])
def test_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(ack.AckError, match=f"length: got {size} bytes"):
        ack.decode(bytes(size), BOX)

"""The signed alarm acknowledgement (gateway/alarm_ack.py) against its golden vectors
(tests/vectors/alarm-ack-v1.json, made independently by make_alarm_ack.py), and every way
decode() refuses one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device import schnorr
from gateway import alarm_ack

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "alarm-ack-v1.json").read_text())


def fields(v: dict) -> alarm_ack.AlarmAck:
    f = v["fields"]
    return alarm_ack.AlarmAck(bytes.fromhex(f["gateway"]), f["alarm"], f["by"], f["at"])


@pytest.mark.parametrize("v", VECTORS["vectors"], ids=lambda v: v["name"])
def test_golden_vectors_byte_for_byte(v: dict) -> None:
    assert VECTORS["tag"].encode() == alarm_ack.TAG
    ack = fields(v)
    assert ack.canonical() == v["canonical"].encode()
    assert ack.message().hex() == v["message"]
    secret, aux = bytes.fromhex(v["secret"]), bytes.fromhex(v["aux"])
    assert alarm_ack.sign(secret, ack, aux) == v["wire"].encode()
    signed = alarm_ack.decode(v["wire"].encode())
    assert signed.ack == ack and signed.key.hex() == v["key"]
    assert signed.signature.hex() == v["signature"]


GOOD = json.loads(VECTORS["vectors"][0]["wire"])


def wire(**change: object) -> bytes:
    body = json.loads(json.dumps(GOOD))
    for path, value in change.items():
        where, key = (body["ack"], path[4:]) if path.startswith("ack_") else (body, path)
        if value is None:
            del where[key]
        else:
            where[key] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (b"", "malformed", "not JSON"),
        (b"\xff\xfe", "malformed", "not JSON"),
        (b"[" * 2000, "malformed", "not JSON"),
        (b" " * 3000, "malformed", "at most 2048"),
        (b"[]", "malformed", "want {"),
        (wire(extra=1), "malformed", "want {"),
        (wire(ack_v=2), "malformed", "v: got 2"),
        (wire(ack_v=True), "malformed", "v: got True"),
        (wire(ack_alarm="3F2A9C1E"), "malformed", "alarm"),
        (wire(ack_alarm="3f2a9c1"), "malformed", "alarm"),
        (wire(ack_by=""), "malformed", "by"),
        (wire(ack_by="x" * 101), "malformed", "by"),
        (wire(ack_at=-1), "malformed", "at"),
        (wire(ack_at=1.5), "malformed", "at"),
        (wire(ack_at=None), "malformed", "ack: want"),
        (wire(ack_gateway="zz" * 32), "malformed", "gateway"),
        (wire(key="00" * 31), "malformed", "key"),
        (wire(signature=GOOD["signature"][:-2]), "malformed", "signature"),
        (wire(ack_by="B. Jones"), "bad signature", "does not verify"),
        (wire(ack_at=GOOD["ack"]["at"] + 1), "bad signature", "does not verify"),
        (wire(key=schnorr.pubkey(bytes(31) + b"\x07").hex()), "bad signature", "verify"),
        # Hex is lowercase only: one spelling of the signed bytes, and of the message.
        (wire(ack_gateway=GOOD["ack"]["gateway"].upper()), "malformed", "lowercase"),
        (wire(key=GOOD["key"].upper()), "malformed", "lowercase"),
    ],
)
def test_refusals_name_their_reason(data: bytes, reason: str, says: str) -> None:
    with pytest.raises(alarm_ack.AckError) as refused:
        alarm_ack.decode(data)
    assert refused.value.reason == reason and says in refused.value.detail


def test_the_tag_keeps_other_signatures_out() -> None:
    """A signature over the same bytes under another tag (e.g. a registry change) fails."""
    v = VECTORS["vectors"][0]
    secret = bytes.fromhex(v["secret"])
    other = schnorr.sign(
        secret, schnorr.tagged_hash(b"PharmaSync/registry/v1", v["canonical"].encode())
    )
    with pytest.raises(alarm_ack.AckError, match="bad signature"):
        alarm_ack.decode(wire(signature=other.hex()))

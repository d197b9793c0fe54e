"""Gateway events (gateway/event.py): the golden vector of docs/protocol.md, canonical bytes
that agree with an independent RFC 8785 implementation, and every refusal of the format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from device import bip340, schnorr
from gateway import event

# The golden vector (docs/protocol.md, "Gateway events"). The gateway secret is
# SHA-256("pharmasync test gateway"); aux = 32 zero bytes. Made by this module, and checked
# below against independent parts: the canonical bytes against the `rfc8785` package, the
# message against hashlib (BIP-340 tagged hash written out), the signature against the
# pure-Python BIP-340 backend (device/bip340.py), which shares no code with libsecp256k1.
SECRET = hashlib.sha256(b"pharmasync test gateway").digest()
GATEWAY = bytes.fromhex("ee77febf01a8da9104dc20a04417233f929c098117a3060ffc7250e71a246c4f")
CANONICAL = (
    '{"body":{"alarm":"high","detail":"9.12 °C > 8 °C","value_cc":912,"zone":"cold room C"},'
    '"gateway":"ee77febf01a8da9104dc20a04417233f929c098117a3060ffc7250e71a246c4f",'
    '"kind":"alarm-raised","seq":7,"time":1793620800}'
).encode()
MESSAGE = bytes.fromhex("fa0c141e6b58298ac1d97283a8d7bdf8cbeaa3db4233ce75be397dba44773de0")
SIGNATURE = bytes.fromhex(
    "7caccbadfbf75e8d8309ba93422804dc97b9507ba1e0f9b5d2a9cbb6fd883265"
    "cde955b4fc46eda35c8b870598d1aace54d180e09be615ab2c401ff3bf457f00"
)
BODY = {"alarm": "high", "zone": "cold room C", "value_cc": 912, "detail": "9.12 °C > 8 °C"}


def golden() -> event.Event:
    return event.Event(GATEWAY, 7, 1_793_620_800, event.ALARM_RAISED, BODY)


def test_the_golden_vector() -> None:
    assert schnorr.pubkey(SECRET) == GATEWAY
    ev = golden().sign(SECRET, aux=bytes(32))
    assert ev.canonical() == CANONICAL
    assert ev.canonical() == rfc8785.dumps(ev.to_json())
    tag = hashlib.sha256(b"PharmaSync/event/v1").digest()
    assert ev.message() == MESSAGE == hashlib.sha256(tag + tag + CANONICAL).digest()
    assert ev.signature == SIGNATURE == bip340.sign(SECRET, MESSAGE, bytes(32))
    assert bip340.verify(GATEWAY, MESSAGE, SIGNATURE) and ev.verify_signature()
    record = ev.encode()
    assert record == SIGNATURE + CANONICAL and len(record) == 64 + len(CANONICAL)
    assert event.decode(record) == ev
    assert event.from_wire(json.loads(json.dumps(ev.to_wire()))) == ev


VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "event-v1.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["events"], ids=lambda v: v["kind"])
def test_the_golden_vector_file(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(VECTORS["gateway_secret"])
    gateway = bytes.fromhex(VECTORS["gateway_key"])
    ev = event.Event(
        gateway, vector["seq"], 1_793_620_800 + vector["seq"], vector["kind"], vector["body"]
    )
    signed = ev.sign(secret, aux=bytes.fromhex(vector["aux"]))
    assert signed.canonical() == vector["canonical"].encode()
    assert signed.message().hex() == vector["message"]
    assert signed.encode().hex() == vector["record"]
    decoded = event.decode(bytes.fromhex(vector["record"]))
    assert decoded == signed and decoded.verify_signature()


def test_a_changed_event_or_another_key_does_not_verify() -> None:
    ev = golden().sign(SECRET)
    other = event.Event(GATEWAY, 8, ev.time, ev.kind, ev.body, ev.signature)
    assert not other.verify_signature()
    with pytest.raises(event.EventError, match="does not match"):
        golden().sign(hashlib.sha256(b"someone else").digest())
    flipped = bytes([SIGNATURE[0] ^ 1]) + SIGNATURE[1:]
    assert not event.decode(flipped + CANONICAL).verify_signature()


# Strings with what RFC 8785 escapes (", \, control characters) and what it must not
# (non-ASCII, DEL, U+2028); integers up to the bound where JSON numbers stay exact.
texts = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from('"\\\x00\x1f\x7f\u2028é€😀'),
    max_size=40,
)
ints = st.integers(-event.MAX_INT, event.MAX_INT)


@given(
    alarm=texts,
    zone=texts,
    detail=texts,
    value=ints,
    seq=st.integers(0, event.MAX_INT),
    rejects=st.dictionaries(
        st.from_regex("[ -~]{1,64}", fullmatch=True),
        st.integers(0, 10**12),
        max_size=event.MAX_COUNTS,  # more is refused (the parametrized refusals below)
    ),
)
def test_canonical_bytes_are_rfc_8785(
    alarm: str, zone: str, detail: str, value: int, seq: int, rejects: dict[str, int]
) -> None:
    alarm_body = {"alarm": alarm, "zone": zone, "detail": detail, "value_cc": value}
    status_body: dict[str, Any] = {"box": GATEWAY.hex(), "rejects": rejects, "backlog": 3}
    for kind, body in ((event.ALARM_CLEARED, alarm_body), (event.BOX_STATUS, status_body)):
        try:
            ev = event.Event(GATEWAY, seq, 0, kind, body)
        except event.EventError as e:
            assert e.field in ("size", "body.alarm", "body.zone", "body.detail")
            continue
        assert ev.canonical() == rfc8785.dumps(ev.to_json())
        assert event.decode(bytes(64) + ev.canonical()).to_json() == ev.to_json()


def alarm(**body: Any) -> dict[str, Any]:
    return {"alarm": "high", "zone": "C"} | body


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("alarm-exploded", alarm(), "kind"),
        (event.ALARM_RAISED, alarm(lot="LOT-7"), "body"),  # events never name a lot
        (event.ALARM_RAISED, {"zone": "C"}, "body.alarm"),
        (event.ALARM_RAISED, alarm(value_cc=9.12), "body.value_cc"),  # no floats
        (event.ALARM_RAISED, alarm(value_cc=True), "body.value_cc"),
        (event.ALARM_RAISED, alarm(value_cc=2**53), "body.value_cc"),
        (event.ALARM_RAISED, alarm(detail="x" * 201), "body.detail"),
        (event.ALARM_RAISED, alarm(detail="\ud800"), "body.detail"),
        (event.ALARM_RAISED, alarm(box="AB" * 32), "body.box"),
        (event.ALARM_RAISED, ["not", "an", "object"], "body"),
        (event.BOX_STATUS, {"box": "ab" * 32}, "body.rejects"),
        (event.BOX_STATUS, {"box": "ab" * 32, "rejects": {"a\n": 1}}, "body.rejects"),
        (event.BOX_STATUS, {"box": "ab" * 32, "rejects": {"a": -1}}, "body.rejects"),
        (event.BOX_STATUS, {"box": "ab" * 32, "rejects": {"a": {"b": 1}}}, "body.rejects"),
        (
            event.BOX_STATUS,
            {"box": "ab" * 32, "rejects": {f"reason {i}": 1 for i in range(33)}},
            "body.rejects",
        ),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field(kind: str, body: Any, field: str) -> None:
    with pytest.raises(event.EventError) as err:
        event.Event(GATEWAY, 0, 0, kind, body)
    assert err.value.field == field and err.value.reason == f"event {field}"


def test_an_oversized_body_is_refused() -> None:
    rejects = {f"{'r' * 60}{i:02d}": event.MAX_INT for i in range(32)}
    with pytest.raises(event.EventError) as err:
        event.Event(GATEWAY, 0, 0, event.BOX_STATUS, {"box": "ab" * 32, "rejects": rejects})
    assert err.value.field == "size" and f"want at most {event.MAX_BODY}" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": 2**53}, "seq"),
        ({"time": 1.5}, "time"),
        ({"gateway": b"short"}, "gateway"),
        ({"signature": b"x" * 63}, "signature"),
    ],
)
def test_header_fields_are_range_checked(fields: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "gateway": GATEWAY,
        "seq": 0,
        "time": 0,
        "kind": event.SITE_ALARM,
        "body": {"alarm": "spool", "state": "raised"},
    }
    with pytest.raises(event.EventError) as err:
        event.Event(**(args | fields))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (SIGNATURE + CANONICAL.replace(b'"seq":7', b'"seq": 7'), "canonical"),
        (SIGNATURE + CANONICAL.replace(b'"seq":7', b'"seq":7.0'), "seq"),
        (SIGNATURE + CANONICAL[:-1], "not JSON"),
        (SIGNATURE + b"[" * 5000 + b"]" * 5000, "size"),
        (SIGNATURE + b"\xff", "not JSON"),
        (SIGNATURE[:10], "signature"),
        (SIGNATURE + b'{"extra":1}', "members"),
    ],
)
def test_records_that_are_not_canonical_events_are_refused(record: bytes, match: str) -> None:
    with pytest.raises(event.EventError, match=match):
        event.decode(record)


def test_a_page_is_one_gateways_consecutive_events() -> None:
    evs = [
        event.Event(GATEWAY, s, 0, event.SITE_ALARM, {"alarm": "spool", "state": "raised"}).sign(
            SECRET
        )
        for s in range(3, 6)
    ]
    assert event.parse_page(event.page(evs)) == evs
    with pytest.raises(event.EventError, match="event 1: got seq 5, want 4"):
        event.parse_page(event.page([evs[0], evs[2]]))
    with pytest.raises(event.EventError, match="want 1 to 100"):
        event.parse_page({"events": []})
    with pytest.raises(event.EventError, match="want 1 to 100"):
        event.parse_page({"events": [evs[0].to_wire()] * 101})
    with pytest.raises(event.EventError, match="page"):
        event.parse_page({"events": evs[0].to_wire()})
    bad = evs[1].to_wire() | {"signature": "zz"}
    with pytest.raises(event.EventError, match="event 1: got 'zz'"):
        event.parse_page({"events": [evs[0].to_wire(), bad]})
    other_secret = hashlib.sha256(b"gateway 2").digest()
    other = event.Event(
        schnorr.pubkey(other_secret), 4, 0, event.SITE_ALARM, {"alarm": "a", "state": "b"}
    ).sign(other_secret)
    with pytest.raises(event.EventError, match="another gateway"):
        event.parse_page(event.page([evs[0], other]))


def test_alarm_drafts_hold_centi_degrees_and_clipped_text() -> None:
    draft = event.alarm_draft("raised", "high", "C", 1_793_620_800.9, 9.125, "é" * 150)
    assert draft.kind == event.ALARM_RAISED and draft.body["value_cc"] == 912
    assert len(draft.body["detail"].encode()) == 200  # 100 two-byte characters
    ev = event.Event(GATEWAY, 0, int(draft.time), draft.kind, draft.body)
    assert ev.time == 1_793_620_800
    assert "value_cc" not in event.alarm_draft("cleared", "silent", "C", 0.0).body

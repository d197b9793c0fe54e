"""The reading format v1 against its golden vectors, its ranges and tampering."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device import reading
from tests.conftest import GOLDEN

VECTORS = json.loads((GOLDEN / "reading-v1.json").read_text())
VALID = VECTORS["valid"]


def _id(case: dict) -> str:
    return case.get("name") or case["why"]


@pytest.mark.parametrize("case", VALID, ids=_id)
def test_golden_reading_signs_decodes_and_reencodes_byte_for_byte(case: dict) -> None:
    wire = bytes.fromhex(case["wire"])
    f = case["fields"]
    secret, aux = bytes.fromhex(case["secret"]), bytes.fromhex(case["aux"])

    signed = reading.sign(
        secret, f["seq"], f["time"], f["temperature"], f["humidity"], f["flags"], aux
    )
    assert signed == wire
    decoded = reading.decode(wire)
    assert decoded == reading.Reading(
        bytes.fromhex(case["key"]),
        f["seq"],
        f["time"],
        f["temperature"],
        f["humidity"],
        f["flags"],
        wire[reading.BODY_SIZE :],
    )
    assert reading.encode(decoded) == wire
    assert reading.message(wire).hex() == case["message"]
    assert reading.verify(wire)
    assert (reading.key_of(wire), reading.seq_of(wire)) == (decoded.key, decoded.seq)


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_id)
def test_malformed_reading_is_rejected_naming_the_field(case: dict) -> None:
    wire = bytes.fromhex(case["wire"])
    with pytest.raises(reading.ReadingError) as err:
        reading.decode(wire)
    assert err.value.field == case["field"]
    assert str(err.value).startswith(case["field"] + ": got ")
    assert not reading.verify(wire)


@pytest.mark.parametrize("case", VECTORS["forged"], ids=_id)
def test_forged_reading_decodes_but_does_not_verify(case: dict) -> None:
    wire = bytes.fromhex(case["wire"])
    reading.decode(wire)  # well-formed ...
    assert not reading.verify(wire)  # ... but not signed by its key


def test_every_single_bit_flip_is_caught() -> None:
    wire = bytes.fromhex(VALID[0]["wire"])
    for bit in range(len(wire) * 8):
        tampered = bytearray(wire)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert not reading.verify(bytes(tampered)), f"bit {bit} flipped and still verifies"


def test_fresh_randomness_gives_distinct_valid_signatures() -> None:
    secret = bytes.fromhex(VALID[0]["secret"])
    a = reading.sign(secret, 5, 1793620800, 400, 5000)
    b = reading.sign(secret, 5, 1793620800, 400, 5000)
    assert a[: reading.BODY_SIZE] == b[: reading.BODY_SIZE]
    assert a != b  # aux=None draws fresh BIP-340 auxiliary randomness
    assert reading.verify(a) and reading.verify(b)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": 2**32}, "seq"),
        ({"time": -1}, "time"),
        ({"time": 2**32}, "time"),
        ({"temperature": 15001}, "temperature"),
        ({"humidity": -1}, "humidity"),
        ({"flags": 0x20}, "flags"),
        ({"flags": reading.FLAG_SENSOR_ERROR}, "sensor error values"),
        ({"key": bytes(31)}, "device key"),
    ],
)
def test_encoder_refuses_out_of_range_fields(fields: dict, field: str) -> None:
    values = {"key": bytes(32), "seq": 1, "time": 0, "temperature": 500, "humidity": 5000}
    values["flags"] = 0
    values.update(fields)
    with pytest.raises(reading.ReadingError) as err:
        reading.encode_body(**values)
    assert err.value.field == field


def test_encode_requires_a_signature() -> None:
    unsigned = reading.Reading(bytes(32), 1, 0, 500, 5000, 0, None)
    with pytest.raises(reading.ReadingError, match="signature: got None"):
        reading.encode(unsigned)


measured = st.tuples(
    st.integers(reading.TEMP_MIN, reading.TEMP_MAX), st.integers(0, reading.HUMIDITY_MAX)
)
flags = st.integers(0, reading.FLAGS_KNOWN).filter(lambda f: not f & reading.FLAG_SENSOR_ERROR)


@given(
    key=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, reading.SEQ_MAX),
    time=st.integers(0, reading.TIME_MAX),
    values=measured,
    flag_bits=flags,
    sig=st.binary(min_size=64, max_size=64),
)
def test_any_in_range_reading_round_trips(key, seq, time, values, flag_bits, sig) -> None:
    r = reading.Reading(key, seq, time, values[0], values[1], flag_bits, sig)
    wire = reading.encode(r)
    assert len(wire) == reading.SIZE
    assert reading.decode(wire) == r


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        decoded = reading.decode(data)
    except reading.ReadingError as e:
        assert e.field  # rejected, with a reason to count
        assert not reading.verify(data)
    else:
        assert reading.encode(decoded) == data

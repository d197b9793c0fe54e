"""The signed reading: PharmaSync's one wire format for a sensor measurement, version 1.

The same 110 bytes travel over MQTT and BLE, are spooled by the gateway, and are the
leaves of the batch Merkle tree. Layout (big-endian; docs/protocol.md has it byte by byte):

    offset size field
         0    1 version          0x01
         1   32 device key       BIP-340 x-only public key of the box
        33    4 seq              u32, monotonic per box, never reused (survives reboots)
        37    4 time             u32, Unix seconds UTC (box's monotonic clock if unsynced)
        41    2 temperature      i16, centi-degrees Celsius
        43    2 humidity         u16, centi-percent relative humidity
        45    1 flags            FLAG_* bits below; other bits must be zero
        46   64 signature        BIP-340 over tagged_hash(TAG, bytes 0..45)

This module runs unchanged on MicroPython (the firmware) and CPython (gateway, cloud).
"""

import struct
from collections import namedtuple

from device import schnorr

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = const(1)
# BIP-340 tagged-hash tag: domain separation from every other signed PharmaSync message.
TAG = b"PharmaSync/reading/v1"

BODY_FORMAT = ">B32sIIhHB"  # version, key, seq, time, temperature, humidity, flags
BODY_SIZE = const(46)  # struct.calcsize(BODY_FORMAT)
SIG_SIZE = const(64)
SIZE = const(110)  # BODY_SIZE + SIG_SIZE
_SEQ_OFFSET = const(33)
_FLAGS_OFFSET = const(45)  # BODY_SIZE - 1

# Status flags. A box sets them when it signs; signed bytes never change afterwards.
FLAG_SENSOR_ERROR = const(0x01)  # no valid measurement: temperature and humidity are 0
FLAG_CLOCK_UNSYNCED = const(0x02)  # time is the box's monotonic clock, not UTC
FLAG_BATTERY_LOW = const(0x04)
FLAG_BACKLOG = const(0x08)  # taken while offline and delivered later from the backlog
FLAGS_KNOWN = const(0x0F)

SEQ_MAX = const(0xFFFFFFFF)
TIME_MAX = const(0xFFFFFFFF)
# Plausible physical ranges, wide enough for ultra-cold (-80 C) vaccine freezers.
TEMP_MIN = const(-10000)  # -100.00 C
TEMP_MAX = const(15000)  # +150.00 C
HUMIDITY_MAX = const(10000)  # 100.00 %


class ReadingError(ValueError):
    """The bytes are not a well-formed version-1 reading.

    `field` names what is wrong (for counting rejects by reason); str() says got/want.
    """

    def __init__(self, field, detail):
        super().__init__(field + ": " + detail)
        self.field = field


# Field order of a decoded reading; `signature` is None for an unsigned body.
Reading = namedtuple(
    "Reading", ("key", "seq", "time", "temperature", "humidity", "flags", "signature")
)


def _check(key, seq, time, temperature, humidity, flags):
    """Raise ReadingError unless every field is within the version-1 ranges."""
    if len(key) != 32:
        raise ReadingError("device key", "got %d bytes, want 32" % len(key))
    if not 0 <= seq <= SEQ_MAX:
        raise ReadingError("seq", "got %d, want 0..%d" % (seq, SEQ_MAX))
    if not 0 <= time <= TIME_MAX:
        raise ReadingError("time", "got %d, want 0..%d" % (time, TIME_MAX))
    if flags & ~FLAGS_KNOWN:
        raise ReadingError(
            "flags", "got 0x%02x, unknown bits 0x%02x" % (flags, flags & ~FLAGS_KNOWN)
        )
    if flags & FLAG_SENSOR_ERROR:
        # A failed read carries no value at all, so nothing made-up can look valid.
        if temperature or humidity:
            raise ReadingError(
                "sensor error values",
                "got temperature %d, humidity %d, want 0, 0" % (temperature, humidity),
            )
        return
    if not TEMP_MIN <= temperature <= TEMP_MAX:
        raise ReadingError(
            "temperature", "got %d centi-C, want %d..%d" % (temperature, TEMP_MIN, TEMP_MAX)
        )
    if not 0 <= humidity <= HUMIDITY_MAX:
        raise ReadingError("humidity", "got %d centi-%%, want 0..%d" % (humidity, HUMIDITY_MAX))


def encode_body(key, seq, time, temperature, humidity, flags=0):
    """Return the 46 unsigned bytes of a reading. Raises ReadingError for out-of-range fields."""
    _check(key, seq, time, temperature, humidity, flags)
    return struct.pack(BODY_FORMAT, VERSION, key, seq, time, temperature, humidity, flags)


def encode(reading):
    """Return the 110 wire bytes of a signed Reading. Raises ReadingError if a field is invalid."""
    sig = reading.signature
    if sig is None or len(sig) != SIG_SIZE:
        raise ReadingError(
            "signature", "got %s, want 64 bytes" % (None if sig is None else len(sig))
        )
    return encode_body(*reading[:6]) + sig


def decode(data):
    """Parse and range-check 110 wire bytes into a Reading; the signature is NOT verified.

    Raises ReadingError naming the first field that is wrong.
    """
    if len(data) != SIZE:
        raise ReadingError("length", "got %d bytes, want %d" % (len(data), SIZE))
    if data[0] != VERSION:
        raise ReadingError("version", "got %d, want %d" % (data[0], VERSION))
    _, key, seq, time, temperature, humidity, flags = struct.unpack_from(BODY_FORMAT, data, 0)
    _check(key, seq, time, temperature, humidity, flags)
    return Reading(key, seq, time, temperature, humidity, flags, bytes(data[BODY_SIZE:SIZE]))


def seq_of(data):
    """Return the seq field of reading bytes without validating anything else."""
    return struct.unpack_from(">I", data, _SEQ_OFFSET)[0]


def key_of(data):
    """Return the box key field of reading bytes without validating anything else."""
    return bytes(data[1:_SEQ_OFFSET])


def flags_of(data):
    """Return the flags byte of reading bytes without validating anything else."""
    return data[_FLAGS_OFFSET]


def message(body):
    """Return the 32-byte message a reading's signature signs: tagged_hash(TAG, body[:46])."""
    return schnorr.tagged_hash(TAG, bytes(body[:BODY_SIZE]))


def sign(secret, seq, time, temperature, humidity, flags=0, aux=None):
    """Return the 110 signed wire bytes of a new reading by the box holding `secret`.

    `aux` is BIP-340 auxiliary randomness (32 bytes; None draws fresh randomness).
    Raises ReadingError for out-of-range fields, ValueError for an invalid secret.
    """
    body = encode_body(schnorr.pubkey(secret), seq, time, temperature, humidity, flags)
    return body + schnorr.sign(secret, message(body), aux)


def verify(data):
    """Return True if `data` is a well-formed reading whose signature is valid for its key.

    Never raises: malformed bytes are simply not a valid reading. Use decode() for the reason.
    """
    try:
        decode(data)
    except ReadingError:
        return False
    return schnorr.verify(bytes(data[1:33]), message(data), bytes(data[BODY_SIZE:SIZE]))

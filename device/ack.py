"""The end-to-end acknowledgement a gateway sends a box: "of the sequence numbers between
the first and the last I list, I have durably stored exactly these ranges". Only then may
the box forget those readings; what it holds between the ranges it resends at once.

Version 2 (what this firmware accepts):

    offset size field
         0    1 version      2
         1    8 gateway id   first 8 bytes of the certified gateway key (device/cert.py)
         9    1 n            ranges that follow, 1..MAX_RANGES
        10   8n ranges       n x (first u32, last u32): first <= last, ascending, and
                             separated by at least one seq (next.first > last + 1)
     10+8n   64 signature    BIP-340 by the gateway over
                             tagged_hash(TAG, device key (32) || bytes 0..10+8n)

74 + 8n bytes, at most 242 (n = 21): with its opcode that is 243 bytes, one BLE write at
the box's ATT MTU of 247 (244 bytes of value, device/ble.py). Gaps are normal (a box
skips the rest of its reserved seq block after a reboot), so ranges, not "the lowest
missing seq", say what was stored: a number that never existed is simply in no range.

Version 1 (firmware 0.1, kept for gateways that still serve it): 4 bytes, the highest
committed seq u32, optionally followed by a 64-byte signature over
tagged_hash(TAG_V1, device key || seq).
"""

import struct

from device import schnorr

TAG = b"PharmaSync/ack/v2"
TAG_V1 = b"PharmaSync/ack/v1"
VERSION = 2
ID_BYTES = 8
MAX_RANGES = 21
_HEAD = 10
MIN_SIZE = 82  # one range
MAX_SIZE = 242  # MAX_RANGES ranges
V1_SIZE = 4
V1_SIGNED_SIZE = 68


class AckError(ValueError):
    """An acknowledgement that must be ignored; str() says why."""


def gateway_id(key):
    """Return the 8-byte id that names a gateway key in an ack."""
    return bytes(key[:ID_BYTES])


def encode(ranges, device_key, gateway_secret, aux=None):
    """Return a version-2 ack of `ranges` [(first, last), ...] for the box `device_key`,
    signed with the gateway's secret. Raises ValueError for ranges decode() would refuse."""
    n = len(ranges)
    if not 1 <= n <= MAX_RANGES:
        raise ValueError("ranges: got %d, want 1..%d" % (n, MAX_RANGES))
    body = bytearray(_HEAD + 8 * n)
    body[0] = VERSION
    body[1:9] = gateway_id(schnorr.pubkey(gateway_secret))
    body[9] = n
    prev = -2
    for i in range(n):
        first, last = ranges[i]
        if not prev + 1 < first <= last <= 0xFFFFFFFF:
            raise ValueError("range %d: got %d..%d after %d" % (i, first, last, prev))
        struct.pack_into(">II", body, _HEAD + 8 * i, first, last)
        prev = last
    sig = schnorr.sign(gateway_secret, schnorr.tagged_hash(TAG, bytes(device_key) + body), aux)
    return bytes(body) + sig


def parse(payload):
    """Return (gateway id, ranges, signed body, signature) of a version-2 ack, unchecked
    signature. Raises AckError naming the malformed field."""
    size = len(payload)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise AckError("length: got %d bytes, want %d..%d" % (size, MIN_SIZE, MAX_SIZE))
    if payload[0] != VERSION:
        raise AckError("version: got %d, want %d" % (payload[0], VERSION))
    n = payload[9]
    if size != _HEAD + 8 * n + 64 or not 1 <= n <= MAX_RANGES:
        raise AckError(
            "range count: got %d in %d bytes, want 1..%d matching" % (n, size, MAX_RANGES)
        )
    ranges = []
    prev = -2
    for i in range(n):
        first, last = struct.unpack_from(">II", payload, _HEAD + 8 * i)
        if not (prev + 1 < first and first <= last):
            raise AckError(
                "range %d: got %d..%d after %d, want ascending and apart" % (i, first, last, prev)
            )
        ranges.append((first, last))
        prev = last
    end = _HEAD + 8 * n
    return bytes(payload[1:9]), ranges, bytes(payload[:end]), bytes(payload[end:])


def decode(payload, device_key, keys):
    """Return the ranges of a version-2 ack for the box `device_key`, checking its signature
    by the gateway it names: `keys` maps gateway ids to certified gateway keys; None skips
    the check (a box provisioned with --insecure-acks).

    Raises AckError: malformed, no certified gateway of that id, or a bad signature.
    """
    gid, ranges, body, sig = parse(payload)
    if keys is None:
        return ranges
    key = keys.get(gid)
    if key is None:
        raise AckError("gateway: no verified certificate for gateway %s" % _hex(gid))
    if not schnorr.verify(key, schnorr.tagged_hash(TAG, bytes(device_key) + body), sig):
        raise AckError("signature: not valid for certified gateway %s" % _hex(gid))
    return ranges


def _hex(b):
    from binascii import hexlify

    return hexlify(b).decode()


def encode_v1(seq, device_key=None, gateway_secret=None):
    """Return a version-1 ack of `seq` (firmware 0.1); signed when a gateway secret (and the
    box's key) is given."""
    body = struct.pack(">I", seq)
    if gateway_secret is None:
        return body
    return body + schnorr.sign(
        gateway_secret, schnorr.tagged_hash(TAG_V1, bytes(device_key) + body)
    )


def decode_v1(payload, device_key, gateway_key=None):
    """Return the seq of a version-1 ack (what firmware 0.1 did); with `gateway_key`, require
    its signature. Raises AckError."""
    n = len(payload)
    if n not in (V1_SIZE, V1_SIGNED_SIZE):
        raise AckError("length: got %d bytes, want %d or %d" % (n, V1_SIZE, V1_SIGNED_SIZE))
    seq = struct.unpack_from(">I", payload, 0)[0]
    if gateway_key is not None:
        if n != V1_SIGNED_SIZE:
            raise AckError("signature: got none, want one by the gateway")
        msg = schnorr.tagged_hash(TAG_V1, bytes(device_key) + bytes(payload[:V1_SIZE]))
        if not schnorr.verify(gateway_key, msg, bytes(payload[V1_SIZE:])):
            raise AckError("signature: not valid for the configured gateway key")
    return seq

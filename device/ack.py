"""The end-to-end acknowledgement a gateway sends a box: "I have durably stored every
reading of yours up to seq N". Only then may the box forget them.

    offset size field
         0    4 seq         u32, highest sequence number committed for this box
         4   64 signature   optional: BIP-340 by the gateway over
                            tagged_hash(TAG, device key (32) || seq (4))

A box provisioned with its gateway's key accepts signed acks only, so nobody else on the
broker can make it drop readings; without a configured key it accepts the 4-byte form.
"""

import struct

from device import schnorr

TAG = b"PharmaSync/ack/v1"
SIZE = 4
SIGNED_SIZE = 68


class AckError(ValueError):
    """An acknowledgement that must be ignored; str() says why."""


def _message(device_key, seq):
    return schnorr.tagged_hash(TAG, bytes(device_key) + struct.pack(">I", seq))


def encode(seq, device_key=None, gateway_secret=None):
    """Return ack bytes for `seq`; signed when a gateway secret (and the box's key) is given."""
    body = struct.pack(">I", seq)
    if gateway_secret is None:
        return body
    return body + schnorr.sign(gateway_secret, _message(device_key, seq))


def decode(payload, device_key, gateway_key=None):
    """Return the acknowledged seq. With `gateway_key`, require a valid signature by it.

    Raises AckError naming the problem (length, signature).
    """
    n = len(payload)
    if n not in (SIZE, SIGNED_SIZE):
        raise AckError("length: got %d bytes, want %d or %d" % (n, SIZE, SIGNED_SIZE))
    seq = struct.unpack_from(">I", payload, 0)[0]
    if gateway_key is not None:
        if n != SIGNED_SIZE:
            raise AckError("signature: got none, want one by the gateway")
        if not schnorr.verify(gateway_key, _message(device_key, seq), bytes(payload[SIZE:])):
            raise AckError("signature: not valid for the configured gateway key")
    return seq

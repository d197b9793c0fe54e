"""The gateway certificate: the box owner's signed word that a gateway key may acknowledge
the owner's boxes. A box trusts its owner's key (config "owner_key"), not one gateway's, so
it can travel between sites; each session the gateway presents this certificate once
(MQTT: retained on topics.cert(site); BLE: the CERT command), then signs its acks with the
certified key (device/ack.py).

    offset size field
         0    1 version      1
         1   32 owner key    x-only key of the owner who signs (the box compares it)
        33   32 gateway key  x-only key that signs acknowledgements
        65    4 not_before   u32 Unix seconds: not valid before
        69    4 not_after    u32 Unix seconds: not valid after (inclusive)
        73    1 site length  L, 1..64
        74    L site         UTF-8, the site the gateway serves (as in MQTT topics)
      74+L   64 signature    BIP-340 by the owner over tagged_hash(TAG, bytes 0..74+L)

138 + L bytes: at most 202, so it fits one BLE write with its opcode (device/ble.py).
"""

import struct

from device import schnorr

TAG = b"PharmaSync/gateway-cert/v1"
VERSION = 1
_HEAD = 74  # bytes before the site
MIN_SIZE = 139  # site of 1 byte
MAX_SIZE = 202  # site of 64 bytes
SITE_MAX = 64


class CertError(ValueError):
    """A certificate that must not be trusted; str() says why."""


def encode(owner_secret, gateway_key, site, not_before, not_after, aux=None):
    """Return the certificate of `gateway_key` for `site`, signed by the owner's secret.

    Raises ValueError for a bad site or validity period.
    """
    s = site.encode()
    if not 1 <= len(s) <= SITE_MAX:
        raise ValueError("site: got %d bytes, want 1..%d" % (len(s), SITE_MAX))
    if not 0 <= not_before <= not_after <= 0xFFFFFFFF:
        raise ValueError(
            "validity: got %d..%d, want 0 <= not_before <= not_after < 2**32"
            % (not_before, not_after)
        )
    if len(gateway_key) != 32:
        raise ValueError("gateway key: got %d bytes, want 32" % len(gateway_key))
    body = (
        bytes((VERSION,))
        + schnorr.pubkey(owner_secret)
        + bytes(gateway_key)
        + struct.pack(">IIB", not_before, not_after, len(s))
        + s
    )
    return body + schnorr.sign(owner_secret, schnorr.tagged_hash(TAG, body), aux)


class Cert:
    """A decoded certificate (not yet trusted: see verify())."""

    def __init__(self, owner, gateway, not_before, not_after, site, body, signature):
        self.owner = owner
        self.gateway = gateway
        self.not_before = not_before
        self.not_after = not_after
        self.site = site
        self.body = body
        self.signature = signature


def decode(data):
    """Return the Cert in `data`. Raises CertError naming the malformed field."""
    n = len(data)
    if not MIN_SIZE <= n <= MAX_SIZE:
        raise CertError("length: got %d bytes, want %d..%d" % (n, MIN_SIZE, MAX_SIZE))
    if data[0] != VERSION:
        raise CertError("version: got %d, want %d" % (data[0], VERSION))
    not_before, not_after, length = struct.unpack_from(">IIB", data, 65)
    if n != _HEAD + length + 64 or not 1 <= length <= SITE_MAX:
        raise CertError(
            "site length: got %d in %d bytes, want 1..%d matching" % (length, n, SITE_MAX)
        )
    try:
        site = str(bytes(data[_HEAD : _HEAD + length]), "utf-8")
    except UnicodeError:
        raise CertError("site: not UTF-8") from None
    body = bytes(data[: _HEAD + length])
    return Cert(
        bytes(data[1:33]),
        bytes(data[33:65]),
        not_before,
        not_after,
        site,
        body,
        bytes(data[_HEAD + length :]),
    )


def verify(data, owner_key, now):
    """Return the Cert in `data` if `owner_key` signed it and `now` (Unix seconds, or None
    for a box whose clock is not synced) is within its validity.

    Raises CertError: malformed, another owner, bad signature, not yet valid, expired, or
    no synced clock to check the validity with.
    """
    c = decode(data)
    if c.owner != bytes(owner_key):
        raise CertError("owner: signed by %s, want this box's owner" % _short(c.owner))
    if not schnorr.verify(c.owner, schnorr.tagged_hash(TAG, c.body), c.signature):
        raise CertError("signature: not valid for the owner key")
    if now is None:
        raise CertError("clock: not synced, cannot check the validity period")
    if now < c.not_before:
        raise CertError("not yet valid: from %d, now %d" % (c.not_before, now))
    if now > c.not_after:
        raise CertError("expired: until %d, now %d" % (c.not_after, now))
    return c


def _short(key):
    from binascii import hexlify

    return hexlify(key[:8]).decode()

"""Gateway certificates: golden vectors, and every reason a box refuses one."""

from __future__ import annotations

import json

import pytest

from device import cert, schnorr
from tests.conftest import GOLDEN

VECTORS = json.loads((GOLDEN / "gateway-cert-v1.json").read_text())
OWNER_SECRET = bytes.fromhex(VECTORS["owner_secret"])
OWNER = bytes.fromhex(VECTORS["owner_key"])
GATEWAY = bytes.fromhex(VECTORS["gateway_key"])
NOW = 1793620800 + 86400


@pytest.mark.parametrize("v", VECTORS["valid"], ids=lambda v: v["name"])
def test_golden_certificates_byte_for_byte(v: dict) -> None:
    wire = bytes.fromhex(v["wire"])
    made = cert.encode(
        OWNER_SECRET, GATEWAY, v["site"], v["not_before"], v["not_after"], bytes.fromhex(v["aux"])
    )
    assert made == wire
    c = cert.verify(wire, OWNER, max(NOW, v["not_before"]))
    assert (c.owner, c.gateway, c.site) == (OWNER, GATEWAY, v["site"])
    assert (c.not_before, c.not_after) == (v["not_before"], v["not_after"])
    assert cert.MIN_SIZE <= len(wire) <= cert.MAX_SIZE


def test_refused_certificates_say_why() -> None:
    wire = bytes.fromhex(VECTORS["valid"][0]["wire"])
    other_owner = bytes(31) + b"\x0b"
    with pytest.raises(cert.CertError, match="owner: signed by"):
        cert.verify(wire, schnorr.pubkey(other_owner), NOW)
    # Someone else signs a certificate naming our owner: the signature gives it away.
    forged = bytearray(cert.encode(other_owner, GATEWAY, "warehouse-1", 0, 2**32 - 1))
    forged[1:33] = OWNER
    with pytest.raises(cert.CertError, match="signature"):
        cert.verify(bytes(forged), OWNER, NOW)
    with pytest.raises(cert.CertError, match="expired"):
        cert.verify(wire, OWNER, 1793620800 + 366 * 86400)
    with pytest.raises(cert.CertError, match="not yet valid"):
        cert.verify(wire, OWNER, 1793620800 - 1)
    with pytest.raises(cert.CertError, match="clock"):
        cert.verify(wire, OWNER, None)
    with pytest.raises(cert.CertError, match="length"):
        cert.verify(wire[:-1] if len(wire) == cert.MIN_SIZE else wire[:100], OWNER, NOW)
    with pytest.raises(cert.CertError, match="site length"):
        cert.verify(wire + b"\x00", OWNER, NOW)
    with pytest.raises(cert.CertError, match="version"):
        cert.verify(b"\x02" + wire[1:], OWNER, NOW)


def test_encode_refuses_what_decode_would() -> None:
    with pytest.raises(ValueError, match="site"):
        cert.encode(OWNER_SECRET, GATEWAY, "", 0, 1)
    with pytest.raises(ValueError, match="site"):
        cert.encode(OWNER_SECRET, GATEWAY, "x" * 65, 0, 1)
    with pytest.raises(ValueError, match="validity"):
        cert.encode(OWNER_SECRET, GATEWAY, "s", 2, 1)

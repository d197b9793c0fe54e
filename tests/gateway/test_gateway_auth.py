"""A gateway's signed read (gateway/gateway_auth.py): the known answer of docs/protocol.md
("Lots of a gateway's boxes"), recomputed with hashlib, and every refusal."""

from __future__ import annotations

import hashlib

import pytest

from device import schnorr
from gateway import gateway_auth
from gateway.gateway_auth import GatewayAuthError

SECRET = bytes(31) + b"\x01"
KEY = schnorr.pubkey(SECRET)
CHALLENGE = bytes(range(32))
PATH = f"/v1/gateways/{KEY.hex()}/lots"
# Made by the code, checked against hashlib below; the signature with zero aux randomness.
DIGEST = "7b7fcd15e0f41dec3337e87a302a43f4499064f236e62add1a28681de23b50a3"
SIG = (
    "6d8408436e1f0cf232113ff0e785268101b0461a98f773f34f898038d9aac4a5"
    "e6249d2e576473a77c0025961a95172c07e0f1583ae5a8ca27ce56ede3672788"
)


def test_the_known_answer() -> None:
    assert KEY.hex() == "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    data = CHALLENGE + KEY + b"GET " + PATH.encode()
    assert len(data) == 150
    tag = hashlib.sha256(b"PharmaSync/gateway-read/v1").digest()
    assert hashlib.sha256(tag + tag + data).hexdigest() == DIGEST
    assert gateway_auth.digest(CHALLENGE, KEY, "GET", PATH).hex() == DIGEST
    assert schnorr.sign(SECRET, bytes.fromhex(DIGEST), bytes(32)).hex() == SIG
    gateway_auth.check(KEY, CHALLENGE, bytes.fromhex(SIG), "GET", PATH)


def test_headers_carry_a_signature_that_checks_only_where_it_was_made() -> None:
    headers = gateway_auth.headers(SECRET, CHALLENGE, "GET", PATH)
    challenge, sig = gateway_auth.read_headers(
        headers["PharmaSync-Challenge"], headers["PharmaSync-Signature"]
    )
    assert challenge == CHALLENGE
    gateway_auth.check(KEY, challenge, sig, "GET", PATH)
    other = schnorr.pubkey(bytes(31) + b"\x02")
    for args in (
        (other, challenge, sig, "GET", PATH),  # another gateway
        (KEY, bytes(32), sig, "GET", PATH),  # another challenge
        (KEY, challenge, sig, "GET", PATH + "/x"),  # another route
        (KEY, challenge, sig, "POST", PATH),
    ):
        with pytest.raises(GatewayAuthError) as info:
            gateway_auth.check(*args)  # type: ignore[arg-type]
        assert (info.value.status, info.value.reason) == (401, "signature")


@pytest.mark.parametrize(
    ("challenge", "signature", "status", "reason"),
    [
        (None, "00" * 64, 401, "auth"),
        ("00" * 32, None, 401, "auth"),
        ("00" * 31, "00" * 64, 400, "challenge"),
        ("zz" * 32, "00" * 64, 400, "challenge"),
        ("00" * 32, "00" * 65, 400, "signature"),
    ],
)
def test_absent_or_malformed_headers_are_refused(
    challenge: str | None, signature: str | None, status: int, reason: str
) -> None:
    with pytest.raises(GatewayAuthError) as info:
        gateway_auth.read_headers(challenge, signature)
    assert (info.value.status, info.value.reason) == (status, reason)

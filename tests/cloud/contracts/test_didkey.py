"""did:key for secp256k1 (cloud/contracts/didkey.py): the did:key spec's published test
vectors, round trips, and each refusal with its reason."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.contracts import didkey
from device import schnorr

# The W3C CCG did:key method's secp256k1 test vectors, test-vectors/secp256k1.json of
# https://github.com/w3c-ccg/did-method-key (commit 801b0a91ce5af882c389ca399fa1fd1a75229c09):
# (did, "seed" = the secret key in hex, "publicKeyBase58" = base58btc of the compressed point).
SPEC_VECTORS = [
    (
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
        "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c",
        "23o6Sau8NxxzXcgSc3PLcNxrzrZpbLeBn1izfv3jbKhuv",
    ),
    (
        "did:key:zQ3shtxV1FrJfhqE1dvxYRcCknWNjHc3c5X1y3ZSoPDi2aur2",
        "f0f4df55a2b3ff13051ea814a8f24ad00f2e469af73c363ac7e9fb999a9072ed",
        "291KzQhqCPC18PqH83XKhxv1HdqrdnxyS7dh15t2uNRzJ",
    ),
    (
        "did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N",
        "6b0b91287ae3348f8c2f2552d766f30e3604867e34adc37ccbb74a8e6b893e02",
        "oesQ92MLiAkt2pjBcJFbW7H4DvzKJv22cotjYbmC2JEe",
    ),
    (
        "did:key:zQ3shadCps5JLAHcZiuX5YUtWHHL8ysBJqFLWvjZDKAWUBGzy",
        "c0a6a7c560d37d7ba81ecee9543721ff48fea3e0fb827d42c1868226540fac15",
        "pg3p1vprqePgUoqfAQ1TTgxhL6zLYhHyzooR1pqLxo9F",
    ),
    (
        "did:key:zQ3shptjE6JwdkeKN4fcpnYQY3m9Cet3NiHdAfpvSUZBFoKBj",
        "175a232d440be1e0788f25488a73d9416c04b6f924bea6354bf05dd2f1a75133",
        "24waDFAUAS16UpZwQQTXVEAmm17rQRjadjuAeBDW8aqL1",
    ),
]


@pytest.mark.parametrize(("did", "seed", "public_b58"), SPEC_VECTORS, ids=lambda v: v[-6:])
def test_the_spec_vectors(did: str, seed: str, public_b58: str) -> None:
    secret = bytes.fromhex(seed)
    point = didkey.b58decode(public_b58)
    assert len(point) == 33 and point == coincurve.PrivateKey(secret).public_key.format()
    assert didkey.from_secret(secret) == did
    assert didkey.from_point(point) == did
    assert didkey.to_point(did) == point
    assert didkey.b58encode(point) == public_b58
    # The x-only key verifies the secret's BIP-340 signatures, whatever the point's parity.
    xonly = didkey.to_xonly(did)
    assert xonly == point[1:] == schnorr.pubkey(secret)
    msg = hashlib.sha256(did.encode()).digest()
    assert schnorr.verify(xonly, msg, schnorr.sign(secret, msg))


# Base58 known answers (draft-msporny-base58 section 5's examples and leading zero bytes).
@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
        (
            b"The quick brown fox jumps over the lazy dog.",
            "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z",
        ),
        (bytes.fromhex("0000287fb4cd"), "11233QC4"),
        (b"", ""),
        (b"\0", "1"),
    ],
)
def test_base58btc(data: bytes, text: str) -> None:
    assert didkey.b58encode(data) == text
    assert didkey.b58decode(text) == data


@given(st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert didkey.b58decode(didkey.b58encode(data)) == data


@given(st.integers(1, 2**256 - 2**128).map(lambda n: n.to_bytes(32, "big")))
def test_every_key_round_trips(secret: bytes) -> None:
    try:
        did = didkey.from_secret(secret)
    except ValueError:  # n <= secret: not a key
        return
    assert did.startswith("did:key:zQ3s") and len(did) <= didkey.MAX_LENGTH
    assert didkey.to_xonly(did) == schnorr.pubkey(secret)
    assert didkey.from_point(didkey.to_point(did)) == did


GOOD = SPEC_VECTORS[0][0]
POINT = didkey.to_point(GOOD)
NOT_ON_CURVE = b"\x02" + bytes(32)  # x = 0: 7 is not a square mod p
ED25519 = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"  # the spec's first example


@pytest.mark.parametrize(
    ("did", "why", "detail"),
    [
        ("did:key:" + GOOD[9:], "prefix", "want 'did:key:z'"),  # no multibase "z"
        ("did:web:example.com", "prefix", "got 'did:web:example.com'"),
        (GOOD.upper(), "prefix", "want 'did:key:z'"),
        (GOOD + "0", "base58", "got '0' at 48"),
        (GOOD[:20] + "l" + GOOD[21:], "base58", "got 'l' at 11"),
        (ED25519, "multicodec", "got 0xed01, want 0xe701"),
        ("did:key:z", "multicodec", "got 0xnothing"),
        ("did:key:z" + didkey.b58encode(b"\xe7\x01" + POINT[:-1]), "length", "got a key of 32"),
        ("did:key:z" + didkey.b58encode(b"\xe7\x01" + POINT + b"\0"), "length", "of 34 bytes"),
        ("did:key:z" + "2" * 60, "length", "got 69 characters, want at most 64"),
        ("did:key:z" + didkey.b58encode(b"\xe7\x01" + NOT_ON_CURVE), "point", "not on secp256k1"),
        ("did:key:z" + didkey.b58encode(b"\xe7\x01\x04" + POINT[1:]), "point", "0x04"),
    ],
)
def test_refusals(did: str, why: str, detail: str) -> None:
    with pytest.raises(didkey.DidKeyError) as info:
        didkey.to_point(did)
    assert info.value.why == why and info.value.reason == "did:key"
    assert detail in info.value.detail, info.value.detail
    with pytest.raises(didkey.DidKeyError):
        didkey.to_xonly(did)


def test_refusals_of_points_and_secrets() -> None:
    with pytest.raises(didkey.DidKeyError, match="point: got an x that is not on"):
        didkey.from_point(NOT_ON_CURVE)
    with pytest.raises(didkey.DidKeyError, match="length: got a key of 65 bytes, want 33"):
        didkey.from_point(coincurve.PrivateKey(b"\1" * 32).public_key.format(compressed=False))
    with pytest.raises(ValueError, match="got 31 bytes, want 32"):
        didkey.from_secret(bytes(31))
    with pytest.raises(ValueError):
        didkey.from_secret(bytes(32))  # zero is no secret key


def test_both_parities_share_the_x_only_key() -> None:
    # Documented in the module: a signature cannot tell 0x02||x from 0x03||x.
    flipped = bytes([POINT[0] ^ 1]) + POINT[1:]
    other = didkey.from_point(flipped)
    assert other != GOOD and didkey.to_xonly(other) == didkey.to_xonly(GOOD)

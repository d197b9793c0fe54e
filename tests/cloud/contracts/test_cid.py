"""CIDv1 of documents (cloud/contracts/cid.py): published known answers, the `multiformats`
package when installed, and a precise refusal for every malformed part."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.contracts import cid

# Known answers: the CIDv1 raw sha2-256 base32 of the empty file and of "hello world" (no
# newline), as `ipfs add --cid-version 1 --raw-leaves` and multiformats' CID print them.
KNOWN = {
    b"": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    b"hello world": "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
}


@pytest.mark.parametrize(("data", "want"), KNOWN.items())
def test_known_answers(data: bytes, want: str) -> None:
    assert cid.cid_of(data) == want
    assert cid.parse(want) == hashlib.sha256(data).digest()
    cid.verify(want, data)


@given(st.binary(max_size=256))
def test_matches_multiformats(data: bytes) -> None:
    multiformats = pytest.importorskip("multiformats")
    wrapped = multiformats.multihash.wrap(hashlib.sha256(data).digest(), "sha2-256")
    assert cid.cid_of(data) == str(multiformats.CID("base32", 1, "raw", wrapped))


def test_verify_refuses_another_document() -> None:
    with pytest.raises(cid.CidError, match="document: its CID is bafkrei"):
        cid.verify(KNOWN[b""], b"hello world")


def _text(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


DIGEST = bytes(32)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"bafk", "want a string"),
        ("bafkrei", "got 7 characters, want 59"),
        ("B" + KNOWN[b""][1:].upper(), "multibase: got 'B'"),
        ("z" + KNOWN[b""][1:], "multibase: got 'z'"),
        (KNOWN[b""][:-1] + "1", "base32: got '1'"),
        (KNOWN[b""][:-1] + "v", "trailing bits"),
        (_text(bytes((0x00, 0x55, 0x12, 0x20)) + DIGEST), "version: got 0x00, want 0x01"),
        (_text(bytes((0x01, 0x70, 0x12, 0x20)) + DIGEST), "codec: got 0x70, want 0x55"),
        (_text(bytes((0x01, 0x55, 0x13, 0x20)) + DIGEST), "hash: got 0x13, want 0x12"),
        (_text(bytes((0x01, 0x55, 0x12, 0x21)) + DIGEST), "digest length: got 0x21"),
    ],
)
def test_parse_refuses_precisely(value: object, message: str) -> None:
    with pytest.raises(cid.CidError, match=message):
        cid.parse(value)

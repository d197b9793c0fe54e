"""Tests for gateway.checkpoint: C2SP tlog-checkpoint bodies and cosignature/v1 witnesses."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway import checkpoint as cp_module
from gateway.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CosignatureSigner,
    CosignatureVerifier,
    CosignerMismatchError,
    OriginMismatchError,
    cosign,
    cosignature_timestamp,
    cosigned_message,
    open_checkpoint,
    sign_checkpoint,
    verify_cosignature,
)
from gateway.note import (
    InvalidSignatureError,
    MalformedNoteError,
    Signer,
    UnsupportedKeyTypeError,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    parse_signature_line,
    sign_note,
)
from tests.gateway.test_note import Example, read_note_examples, text_of

ROOT = hashlib.sha256(b"root").digest()
TEXT = "example.com/log\n5\n" + base64.b64encode(ROOT).decode() + "\n"


@pytest.fixture(scope="module")
def examples(shared_vectors: Path) -> dict[int, Example]:
    return read_note_examples(shared_vectors / "note-examples.txt")[0]


# Fixed seeds keep the mutations reproducible.
@pytest.fixture(scope="module")
def log() -> Signer:
    return Signer("example.com/log", b"\x11" * 32)


@pytest.fixture(scope="module")
def witness() -> CosignatureSigner:
    return CosignatureSigner("witness.example/w1", b"\x22" * 32)


def test_constants() -> None:
    # signed-note "Signature types" 0x04: timestamped Ed25519 cosignatures (tlog-cosignature).
    assert cp_module.ALG_COSIGNATURE_V1 == 0x04
    assert cp_module.COSIGNATURE_V1_HEADER == "cosignature/v1\n"
    assert cp_module.MAX_TIMESTAMP == 2**63 - 1
    assert cp_module.COSIGNATURE_SIZE == 8 + 64


def test_example_3_sum_golang_org(examples: dict[int, Example]) -> None:
    ex = examples[3]
    verifier = Verifier.parse(ex.fields["verifier-key"][0])
    got = open_checkpoint(ex.note, verifier, origin="go.sum database tree")
    root = base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert got == Checkpoint("go.sum database tree", 6476701, root)
    assert got.to_text() == text_of(ex)
    assert open_checkpoint(ex.note, verifier) == got
    with pytest.raises(
        OriginMismatchError, match=re.escape("got 'go.sum database tree', want 'x'")
    ) as err:
        open_checkpoint(ex.note, verifier, origin="x")
    assert (err.value.got, err.value.want) == ("go.sum database tree", "x")


def test_example_5_structure(examples: dict[int, Example]) -> None:
    # The C2SP example: no key published, so parse and check the layout only.
    text, (log_sig, witness_sig) = parse_note(examples[5].note)
    checkpoint = Checkpoint.parse(text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert base64.b64encode(checkpoint.root_hash) == b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert (log_sig.name, len(log_sig.signature)) == ("example.com/behind-the-sofa", 64)
    # `echo -n jWbPPwAAAABkGFDL | base64 -d | xxd -p` = 8d66cf3f 00000000641850cb
    assert (witness_sig.name, witness_sig.key_id) == ("witness.example.com/w1", 0x8D66CF3F)
    assert cosignature_timestamp(witness_sig) == 1679315147
    # The cosigned message printed in tlog-cosignature.md for this checkpoint.
    assert cosigned_message(text, 1679315147) == (
        b"cosignature/v1\n"
        b"time 1679315147\n"
        b"example.com/behind-the-sofa\n"
        b"20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    with pytest.raises(MalformedNoteError, match="got 64 bytes, want 72"):
        cosignature_timestamp(log_sig)
    stranger = CosignatureSigner.generate("witness.example.com/w1").verifier()
    with pytest.raises(UnverifiedNoteError):
        open_note(examples[5].note, [stranger])


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint("example.com/log", 0, hashlib.sha256(b"").digest()),  # the empty tree
        Checkpoint("go.sum database tree", 2**64 - 1, ROOT),
        Checkpoint("o", 7, ROOT, ("ext one", "ext — two")),
    ],
)
def test_text_round_trip(checkpoint: Checkpoint) -> None:
    text = checkpoint.to_text()
    assert Checkpoint.parse(text) == checkpoint
    assert text.count("\n") == 3 + len(checkpoint.extensions)


def test_extensions_become_a_tuple() -> None:
    assert Checkpoint("o", 1, ROOT, ["x"]).extensions == ("x",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "origin line: got '', want a non-empty line"),
        ({"origin": "a\nb"}, "origin line"),
        ({"origin": "a\rb"}, "U\\+000D"),
        ({"size": -1}, "tree size: got -1"),
        ({"size": 2**64}, "tree size"),
        ({"size": True}, "tree size: got True"),
        ({"size": 5.0}, "tree size"),
        ({"root_hash": ROOT[:31]}, "root hash: got 31 bytes, want 32"),
        ({"extensions": ("",)}, "extension line: got ''"),
        ({"extensions": ("a\nb",)}, "extension line"),
    ],
)
def test_invalid_fields(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"origin": "o", "size": 1, "root_hash": ROOT} | kwargs
    with pytest.raises(CheckpointFormatError, match=message):
        Checkpoint(**fields)


B64_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"o\n5\n{B64_ROOT}", "want '\\\\n'"),  # no final newline
        ("o\n5\n", "got 2 lines, want 3 or more"),
        (f"o\n5\n{B64_ROOT}\n\n", "extension line: got ''"),  # extra blank line
        (f"o\n5\n{B64_ROOT}\n\next\n", "extension line: got ''"),
        (f"\n5\n{B64_ROOT}\n", "origin line"),
        (f"o\n05\n{B64_ROOT}\n", "tree size: got '05'"),
        (f"o\n00\n{B64_ROOT}\n", "tree size"),
        (f"o\n+5\n{B64_ROOT}\n", "tree size"),
        (f"o\n-0\n{B64_ROOT}\n", "tree size"),
        (f"o\n 5\n{B64_ROOT}\n", "tree size"),
        (f"o\n5_0\n{B64_ROOT}\n", "tree size"),
        (f"o\n\u0665\n{B64_ROOT}\n", "tree size"),  # ARABIC-INDIC DIGIT FIVE: int() takes it
        (f"o\n\n{B64_ROOT}\n", "tree size"),
        (f"o\n{2**64}\n{B64_ROOT}\n", "tree size: got 18446744073709551616"),
        (f"o\n{'9' * 5000}\n{B64_ROOT}\n", "tree size"),
        (f"o\n5\n{B64_ROOT[:-1]}\n", "root hash: got invalid base64"),
        (f"o\n5\n{B64_ROOT[:-2]}9=\n", "root hash: got non-canonical base64"),
        (f"o\n5\n{base64.b64encode(ROOT + b'x').decode()}\n", "root hash: got 33 bytes"),
        ("o\n5\n\n", "root hash: got 0 bytes"),
        (f"o\r\n5\n{B64_ROOT}\n", "U\\+000D"),
    ],
)
def test_parse_is_strict(text: str, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message):
        Checkpoint.parse(text)


def test_sign_and_open(log: Signer) -> None:
    checkpoint = Checkpoint("example.com/log", 5, ROOT, ("extension",))
    signed = sign_checkpoint(checkpoint, log)
    assert signed.startswith(checkpoint.to_text() + "\n— example.com/log ")
    assert open_checkpoint(signed, log.verifier(), origin="example.com/log") == checkpoint
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(signed, Signer("example.com/log", b"\x12" * 32).verifier())
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(signed.replace("\n5\n", "\n6\n"), log.verifier())


def test_a_verified_note_that_is_no_checkpoint_is_refused(log: Signer) -> None:
    with pytest.raises(CheckpointFormatError, match="got 2 lines"):
        open_checkpoint(sign_note("just\ntwo lines\n", log), log.verifier())


def test_cosignature_key_id_uses_type_0x04(witness: CosignatureSigner) -> None:
    public = witness.public_key
    # SHA-256(name || 0x0A || 0x04 || public key)[:4] (tlog-cosignature "Format").
    digest = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()
    assert witness.key_id == witness.verifier().key_id == int.from_bytes(digest[:4], "big")
    assert witness.key_id != Signer(witness.name, witness.seed).key_id  # the 0x01 key ID
    assert base64.b64decode(witness.verifier().to_vkey().split("+")[2])[0] == 0x04


def test_cosignature_layout_checked_independently(witness: CosignatureSigner) -> None:
    line = cosign(TEXT, witness, 1_700_000_000)
    assert line.startswith("— witness.example/w1 ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    assert int.from_bytes(blob[:4], "big") == witness.key_id
    assert blob[4:12] == (1_700_000_000).to_bytes(8, "big")
    # Verify with cryptography directly over a hand-built message, not through the module.
    message = b"cosignature/v1\ntime 1700000000\n" + TEXT.encode()
    Ed25519PublicKey.from_public_bytes(witness.public_key).verify(blob[12:], message)
    assert verify_cosignature(TEXT, line, witness.verifier()) == 1_700_000_000


def test_cosignature_mutations(witness: CosignatureSigner) -> None:
    verifier = witness.verifier()
    line = cosign(TEXT, witness, 1_700_000_000)
    sig = parse_signature_line(line)
    blob = bytearray(base64.b64decode(sig.b64))
    blob[11] ^= 0x01  # the timestamp is signed: 1700000001 no longer verifies
    restamped = f"— {sig.name} {base64.b64encode(blob).decode()}\n"
    with pytest.raises(InvalidSignatureError, match=re.escape("witness.example/w1")):
        verify_cosignature(TEXT, restamped, verifier)
    with pytest.raises(InvalidSignatureError):
        verify_cosignature(TEXT.replace("\n5\n", "\n6\n"), line, verifier)
    other = CosignatureSigner("witness.example/w2", b"\x33" * 32).verifier()
    with pytest.raises(CosignerMismatchError, match=re.escape("got witness.example/w1+")):
        verify_cosignature(TEXT, line, other)
    with pytest.raises(CheckpointFormatError):
        verify_cosignature("not a checkpoint\n", line, verifier)
    with pytest.raises(MalformedNoteError):
        verify_cosignature(TEXT, line.replace("—", "-"), verifier)
    short = f"— {sig.name} {base64.b64encode(bytes(blob[:-1])).decode()}\n"
    with pytest.raises(MalformedNoteError, match="got 71 bytes, want 72"):
        verify_cosignature(TEXT, short, verifier)


@pytest.mark.parametrize("timestamp", [-1, 2**63, True])
def test_cosignature_timestamp_range(witness: CosignatureSigner, timestamp: int) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        cosign(TEXT, witness, timestamp)


def test_maximum_timestamp_is_accepted(witness: CosignatureSigner) -> None:
    line = cosign(TEXT, witness, 2**63 - 1)
    assert verify_cosignature(TEXT, line, witness.verifier()) == 2**63 - 1


def test_cosigning_wants_a_checkpoint(witness: CosignatureSigner) -> None:
    with pytest.raises(CheckpointFormatError):
        cosign("hello\n", witness, 1)


def test_cosigner_reads_plain_ed25519_and_0x04_keys(
    shared_vectors: Path, witness: CosignatureSigner
) -> None:
    # As transparency-dev/formats NewSignerForCosignatureV1: a 0x01 key string is accepted and
    # signs with the 0x04 key ID. "Log" is the first key pair in note-examples.txt.
    skey = "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ"
    assert skey in (shared_vectors / "note-examples.txt").read_text()
    plain, cosigner = Signer.parse(skey), CosignatureSigner.parse(skey)
    assert cosigner.seed == plain.seed and cosigner.key_id != plain.key_id
    vkey = "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs"
    assert CosignatureVerifier.parse(vkey) == cosigner.verifier()
    assert CosignatureSigner.parse(witness.to_skey()) == witness
    assert CosignatureVerifier.parse(witness.verifier().to_vkey()) == witness.verifier()
    with pytest.raises(UnsupportedKeyTypeError, match="got 0x04, want 0x01"):
        Verifier.parse(witness.verifier().to_vkey())


def test_log_and_witness_signatures_on_one_note(log: Signer, witness: CosignatureSigner) -> None:
    signed = sign_checkpoint(Checkpoint.parse(TEXT), log)
    cosigned = signed + cosign(TEXT, witness, 1_700_000_000)
    both = open_note(cosigned, [log.verifier(), witness.verifier()])
    assert [s.name for s in both.verified] == [log.name, witness.name]
    assert cosignature_timestamp(both.verified[1]) == 1_700_000_000
    assert open_checkpoint(cosigned, log.verifier()) == Checkpoint.parse(TEXT)
    assert open_note(cosigned, [witness.verifier()]).unverified[0].name == log.name
    # A plain Ed25519 verifier of the witness key does not know its 0x04 cosignature.
    with pytest.raises(UnverifiedNoteError):
        open_note(cosigned, [Verifier(witness.name, witness.public_key)])
    # sign_note takes a cosigner too; it then cosigns as of now.
    now = open_note(sign_note(TEXT, log, witness), [witness.verifier()])
    assert abs(cosignature_timestamp(now.verified[0]) - time.time()) < 60

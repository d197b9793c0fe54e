"""Tests for gateway.note: C2SP signed notes with Ed25519, checked against the Go vectors."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import note
from gateway.note import (
    AmbiguousVerifierError,
    InvalidSignatureError,
    KeyFormatError,
    KeyIdMismatchError,
    MalformedNoteError,
    Signer,
    UnsupportedKeyTypeError,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)

# sha256sum ../shared/vectors/note-examples.txt, as recorded in ../shared/vectors/README.md.
NOTE_EXAMPLES_SHA256 = "123e72f09e7b79be86b4d4c02ce6c824e5dd3a6f2a1961bcecb1758e88a9244a"


@dataclass(frozen=True)
class Example:
    """One `[example N]` block of note-examples.txt: its `key: value` lines and note."""

    fields: dict[str, list[str]]
    note: str


# The file's header: "[example N] title", `key: value` lines, then the exact note bytes
# between a BEGIN line and an END line.
_EXAMPLE = re.compile(
    r"^\[example (?P<n>\d+)\][^\n]*\n(?P<head>.*?)"
    r"^-----BEGIN NOTE-----\n(?P<note>.*?)^-----END NOTE-----$",
    re.MULTILINE | re.DOTALL,
)


def read_note_examples(path: Path) -> tuple[dict[int, Example], dict[str, list[str]]]:
    """Return the examples by number and the trailing key lists (vkey, skey, bad-vkey)."""
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == NOTE_EXAMPLES_SHA256
    text = raw.decode()  # bytes, so no newline translation
    examples = {}
    for m in _EXAMPLE.finditer(text):
        fields: dict[str, list[str]] = {}
        for line in m["head"].splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                fields.setdefault(key, []).append(value)
        examples[int(m["n"])] = Example(fields, m["note"])
    keys: dict[str, list[str]] = {}
    for m in re.finditer(r"^(vkey|skey|bad-vkey): (\S+)$", text, re.MULTILINE):
        keys.setdefault(m[1], []).append(m[2])
    return examples, keys


@pytest.fixture(scope="module")
def vectors(shared_vectors: Path) -> tuple[dict[int, Example], dict[str, list[str]]]:
    return read_note_examples(shared_vectors / "note-examples.txt")


@pytest.fixture(scope="module")
def examples(vectors: tuple[dict[int, Example], dict[str, list[str]]]) -> dict[int, Example]:
    assert sorted(vectors[0]) == [1, 2, 3, 4, 5, 6]
    return vectors[0]


def text_of(example: Example) -> str:
    """The note text: everything up to and including the newline before the last blank line."""
    return example.note[: example.note.rindex("\n\n") + 1]


PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)


def test_wire_constants() -> None:
    # c2sp.org/signed-note: em dash U+2014 then a space; Ed25519 is signature type 0x01.
    assert note.SIG_PREFIX.encode() == b"\xe2\x80\x94 "
    assert note.ALG_ED25519 == 0x01
    assert note.KEY_ID_SIZE == 4
    assert note.MAX_SIGNATURES == 100  # Go note.Open; the spec requires at least 16


def test_key_id_is_sha256_of_name_newline_type_key(examples: dict[int, Example]) -> None:
    verifier = Verifier.parse(examples[1].fields["verifier-key"][0])
    # SHA-256("PeterNeumann" || 0x0A || 0x01 || pubkey)[:4], big-endian; c74f20a3 per the vector.
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()
    assert verifier.key_id == int.from_bytes(digest[:4], "big") == 0xC74F20A3
    assert note.key_id("PeterNeumann", 0x01, verifier.public_key) == 0xC74F20A3


def test_example_1_verifies_and_resigns_byte_for_byte(examples: dict[int, Example]) -> None:
    ex = examples[1]
    verifier = Verifier.parse(ex.fields["verifier-key"][0])
    signer = Signer.parse(ex.fields["signer-key"][0])
    opened = open_note(ex.note, [verifier])
    assert opened.text == text_of(ex) == PETER_TEXT
    assert [(s.name, s.key_id) for s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]
    assert opened.unverified == ()
    # Go's TestSign asserts byte equality: Ed25519 is deterministic.
    assert sign_note(opened.text, signer) == ex.note
    assert signer.verifier() == verifier
    assert signer.to_skey() == ex.fields["signer-key"][0]
    assert verifier.to_vkey() == ex.fields["verifier-key"][0]
    assert opened.verified[0].line == ex.note.splitlines(keepends=True)[-1]


def test_example_2_known_and_unknown_signers(examples: dict[int, Example]) -> None:
    ex = examples[2]
    peter, enoch = (Verifier.parse(k) for k in ex.fields["verifier-key"])
    both = open_note(ex.note, [peter, enoch])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    only_peter = open_note(ex.note, [peter])
    assert [s.name for s in only_peter.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in only_peter.unverified] == [("EnochRoot", 0xAF0CFE78)]
    with pytest.raises(UnverifiedNoteError, match="note has no verifiable signatures") as err:
        open_note(ex.note.encode(), [])
    assert err.value.note.text == PETER_TEXT
    assert [s.name for s in err.value.note.unverified] == ["PeterNeumann", "EnochRoot"]
    assert err.value.note.verified == ()


def test_example_3_sum_golang_org_checkpoint_verifies(examples: dict[int, Example]) -> None:
    ex = examples[3]
    opened = open_note(ex.note, [Verifier.parse(ex.fields["verifier-key"][0])])
    assert opened.text.splitlines() == [
        "go.sum database tree",
        "6476701",
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=",
    ]
    assert [(s.name, s.key_id) for s in opened.verified] == [("sum.golang.org", 0x033DE0AE)]


def test_example_4_rfc6962_signature_type_is_unsupported(examples: dict[int, Example]) -> None:
    ex = examples[4]
    with pytest.raises(UnsupportedKeyTypeError, match="got 0x05, want 0x01") as err:
        Verifier.parse(ex.fields["verifier-key"][0])
    assert err.value.key_type == 0x05
    # Its signature is then from an unknown key: kept unverified, never a crash.
    stranger = Signer.generate("rome.ct.filippo.io/2024h1").verifier()
    with pytest.raises(UnverifiedNoteError) as unverified:
        open_note(ex.note, [stranger])
    (sig,) = unverified.value.note.unverified
    assert (sig.name, sig.key_id) == ("rome.ct.filippo.io/2024h1", 0x78F4ABAE)
    # key ID (4) || timestamp ms (8) || TLS DigitallySigned (the README's `checked:` line)
    assert int.from_bytes(sig.signature[:8], "big") == 1711519390034
    assert sig.signature[8:10] == b"\x04\x03"  # sha256, ecdsa


@pytest.mark.parametrize(
    ("number", "lines", "signers"),
    [
        # `echo -n <first 8 base64 chars of the signature> | base64 -d | xxd -p` gives the IDs.
        (
            5,
            3,
            [("example.com/behind-the-sofa", 0x033DE0AE), ("witness.example.com/w1", 0x8D66CF3F)],
        ),
        (6, 4, [("quasimodo.example/salvatore", 0x367BA04B)]),
    ],
)
def test_spec_examples_parse(
    examples: dict[int, Example], number: int, lines: int, signers: list[tuple[str, int]]
) -> None:
    # No keys are published for the C2SP spec examples: structure only.
    text, signatures = parse_note(examples[number].note)
    assert text == text_of(examples[number])
    assert len(text.splitlines()) == lines
    assert [(s.name, s.key_id) for s in signatures] == signers
    with pytest.raises(UnverifiedNoteError):
        open_note(examples[number].note, [Signer.generate(signers[0][0]).verifier()])


def test_example_6_text_keeps_its_empty_line(examples: dict[int, Example]) -> None:
    text, _ = parse_note(examples[6].note)
    assert text == (
        "Ognuno sta solo sul cuor della terra\n"
        "trafitto da un raggio di sole:\n"
        "\n"
        "ed è subito sera.\n"
    )


def test_key_pairs_derive_their_verifier_keys(
    vectors: tuple[dict[int, Example], dict[str, list[str]]],
) -> None:
    keys = vectors[1]
    assert len(keys["skey"]) == len(keys["vkey"]) == 4
    for skey, vkey in zip(keys["skey"], keys["vkey"], strict=True):
        signer, verifier = Signer.parse(skey), Verifier.parse(vkey)
        assert signer.verifier() == verifier
        assert (signer.to_skey(), verifier.to_vkey()) == (skey, vkey)
        assert verifier.key_id == int(vkey.split("+")[1], 16)
        text = f"signed by {signer.name}\n"
        assert open_note(sign_note(text, signer), [verifier]).text == text


def test_go_bad_verifier_keys_are_rejected(
    vectors: tuple[dict[int, Example], dict[str, list[str]]],
) -> None:
    wrong_length, unknown_algorithm = vectors[1]["bad-vkey"]
    with pytest.raises(KeyFormatError) as err:
        Verifier.parse(wrong_length)
    assert not isinstance(err.value, UnsupportedKeyTypeError)
    with pytest.raises(UnsupportedKeyTypeError, match="got 0x65, want 0x01"):
        Verifier.parse(unknown_algorithm)


def test_every_substring_and_byte_increment_of_a_key_is_rejected(
    examples: dict[int, Example],
) -> None:
    # Go's TestNewVerifier / TestNewSigner: every proper substring, every single-byte increment.
    for key, parse in [
        (examples[1].fields["verifier-key"][0], Verifier.parse),
        (examples[1].fields["signer-key"][0], Signer.parse),
    ]:
        parse(key)
        variants = [key[i:j] for i in range(len(key)) for j in range(i + 1, len(key) + 1)]
        variants += [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
        for variant in variants:
            if variant != key:
                with pytest.raises(KeyFormatError):
                    parse(variant)


@pytest.mark.parametrize(
    "name",
    # Go's unicode.IsSpace: ASCII spaces, U+0085, U+00A0 and categories Zs, Zl, Zp.
    [
        *("", "a+b", "a b", "a\tb", "a\nb", "a\x00b", "a\x85b", "a\xa0b"),
        *("a\u2003b", "a\u2028b", "a\u3000b", "a\ud800b"),
    ],
)
def test_invalid_key_names_are_rejected(name: str) -> None:
    with pytest.raises(KeyFormatError, match="key name"):
        Signer(name, bytes(32))
    assert note.name_problem(name) is not None


@pytest.mark.parametrize("name", ["example.com/log42", "go.sum—tree", "café", "a\u200bb", "x\x7f"])
def test_unusual_but_valid_key_names(name: str) -> None:
    signer = Signer(name, bytes(32))
    assert Signer.parse(signer.to_skey()) == signer
    assert Verifier.parse(signer.verifier().to_vkey()) == signer.verifier()


GOOD_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann", "got '', want 8 lowercase hex digits"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase"),
        ("PeterNeumann+c74f20a3+", "got 0 bytes"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "invalid base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n", "invalid base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "got 29 bytes, want 32"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
    ],
)
def test_malformed_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        Verifier.parse(vkey)


def test_key_id_mismatch_reports_stated_and_computed() -> None:
    with pytest.raises(KeyIdMismatchError, match="got c74f20a4, want c74f20a3") as err:
        Verifier.parse(GOOD_VKEY.replace("c74f20a3", "c74f20a4"))
    assert (err.value.stated, err.value.computed) == (0xC74F20A4, 0xC74F20A3)


def test_signer_keys_need_the_private_prefix_and_stay_secret() -> None:
    signer = Signer.generate("example.com/log")
    skey = signer.to_skey()
    with pytest.raises(KeyFormatError, match="PRIVATE\\+KEY\\+"):
        Signer.parse(skey.removeprefix("PRIVATE+"))
    with pytest.raises(KeyFormatError):
        Verifier.parse(skey)
    b64 = skey.split("+", 4)[4]  # the base64 itself may hold '+'
    assert len(b64) == 44
    assert b64 not in repr(signer)
    with pytest.raises(KeyFormatError) as err:
        Signer.parse(skey[:-2] + "!!")  # an error never echoes the seed
    assert b64[:-2] not in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "hello\n",
        "\n",  # a text that is one empty line
        "first\n\nthird\n",  # empty lines are allowed; the LAST blank line splits
        "ends with an empty line\n\n",
        "— looks like a signature line\n",
        "unicode: 2\u20138 °C, ΔH, \U0001f9ca\n",
    ],
)
def test_sign_open_round_trip(text: str) -> None:
    signer = Signer.generate("example.com/log")
    signed = sign_note(text, signer)
    opened = open_note(signed, [signer.verifier()])
    assert opened.text == text
    assert [s.key_id for s in opened.verified] == [signer.key_id]
    assert open_note(signed.encode(), [signer.verifier()]) == opened


def test_several_signers_in_order() -> None:
    a, b, c = (Signer.generate(f"example.com/{n}") for n in "abc")
    signed = sign_note("text\n", a, b, c)
    assert [s.name for s in parse_note(signed)[1]] == [
        "example.com/a",
        "example.com/b",
        "example.com/c",
    ]
    opened = open_note(signed, [c.verifier(), a.verifier()])
    assert [s.name for s in opened.verified] == ["example.com/a", "example.com/c"]
    assert [s.name for s in opened.unverified] == ["example.com/b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no final newline", "want a newline"),
        ("", "want a newline"),
        ("carriage return\r\n", "U\\+000D"),
        ("tab\there\n", "U\\+0009"),
        ("surrogate \ud800\n", "lone surrogate"),
    ],
)
def test_sign_note_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(MalformedNoteError, match=message):
        sign_note(text, Signer.generate("example.com/log"))


def test_sign_note_wants_distinct_signers() -> None:
    signer = Signer.generate("example.com/log")
    with pytest.raises(ValueError, match="got 0, want 1 to 100"):
        sign_note("text\n")
    with pytest.raises(ValueError, match="got one key twice"):
        sign_note("text\n", signer, Signer(signer.name, signer.seed))


# --- mutations of a good two-signature note ------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[Signer, Signer, str]:
    # Fixed seeds keep every mutation below reproducible.
    log, other = Signer("example.com/log", b"\x01" * 32), Signer("example.com/other", b"\x02" * 32)
    return log, other, sign_note("origin\n42\nsome text\n", log, other)


def reencode(line: str, mutate: bytearray) -> str:
    """`line` with its base64 blob replaced."""
    return line.rsplit(" ", 1)[0] + " " + base64.b64encode(mutate).decode() + "\n"


def test_flipped_text_fails_the_known_signature(pair: tuple[Signer, Signer, str]) -> None:
    log, _, signed = pair
    with pytest.raises(
        InvalidSignatureError, match=re.escape("invalid signature for key example.com/log+")
    ) as err:
        open_note(signed.replace("42", "43"), [log.verifier()])
    assert (err.value.name, err.value.key_id) == (log.name, log.key_id)


def test_flipped_signature_bit_fails(pair: tuple[Signer, Signer, str]) -> None:
    log, _, signed = pair
    text, sigs = parse_note(signed)
    blob = bytearray(base64.b64decode(sigs[0].b64))
    blob[-1] ^= 0x01
    with pytest.raises(InvalidSignatureError):
        open_note(text + "\n" + reencode(sigs[0].line, blob) + sigs[1].line, [log.verifier()])


def test_wrong_key_id_or_name_makes_the_signature_unknown(pair: tuple[Signer, Signer, str]) -> None:
    # signed-note: ignore signatures that share a name or an ID (but not both) with a key.
    log, _, signed = pair
    text, sigs = parse_note(signed)
    blob = bytearray(base64.b64decode(sigs[0].b64))
    blob[0] ^= 0x80
    wrong_id = text + "\n" + reencode(sigs[0].line, blob)
    with pytest.raises(UnverifiedNoteError) as err:
        open_note(wrong_id, [log.verifier()])
    assert err.value.note.unverified[0].key_id == log.key_id ^ 0x80000000
    wrong_name = text + "\n" + sigs[0].line.replace("example.com/log", "example.com/log2")
    with pytest.raises(UnverifiedNoteError):
        open_note(wrong_name, [log.verifier()])


def test_duplicate_signatures_count_once(pair: tuple[Signer, Signer, str]) -> None:
    # As Go's note.Open: a repeated known key or an identical unknown line is dropped, so a
    # duplicate can never count twice toward a quorum.
    log, _, signed = pair
    text, (ours, theirs) = parse_note(signed)
    opened = open_note(
        text + "\n" + ours.line + theirs.line + ours.line + theirs.line, [log.verifier()]
    )
    assert (len(opened.verified), len(opened.unverified)) == (1, 1)
    # ... but the first of them is checked: a bad one first rejects the note.
    blob = bytearray(base64.b64decode(ours.b64))
    blob[10] ^= 0x01
    with pytest.raises(InvalidSignatureError):
        open_note(text + "\n" + reencode(ours.line, blob) + ours.line, [log.verifier()])


def test_blank_line_rules(pair: tuple[Signer, Signer, str]) -> None:
    log, other, signed = pair
    text, (ours, theirs) = parse_note(signed)
    with pytest.raises(MalformedNoteError, match="no blank line"):
        open_note(text + ours.line, [log.verifier()])
    with pytest.raises(MalformedNoteError, match="got nothing after the last blank line"):
        open_note(signed + "\n", [log.verifier()])
    # A blank line between signatures makes the first one part of the text.
    split = text + "\n" + ours.line + "\n" + theirs.line
    assert parse_note(split)[0] == text + "\n" + ours.line
    with pytest.raises(InvalidSignatureError):
        open_note(split, [log.verifier(), other.verifier()])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda n: n[:-1], "want a line"),  # missing final newline
        (lambda n: n.replace("\n", "\r\n"), "U\\+000D"),
        (lambda n: n.replace("—", "-"), "want '— <name> <base64>'"),
        (lambda n: n.replace("— example.com/log ", "— example.com/log"), "no space"),
        (lambda n: n.replace("— example.com/log ", "— example.com+log "), "key name"),
        (lambda n: n.replace("— example.com/log ", "—  example.com/log "), "key name"),
        (lambda n: n.replace("— example.com/log ", "— example.com/log \u00a0"), "base64"),
    ],
)
def test_malformed_notes(pair: tuple[Signer, Signer, str], mutate, message: str) -> None:
    log, _, signed = pair
    with pytest.raises(MalformedNoteError, match=message):
        open_note(mutate(signed), [log.verifier()])


@pytest.mark.parametrize(
    ("b64", "message"),
    [
        ("", "got 0 bytes, want 5 or more"),
        ("AAAA", "got 3 bytes, want 5 or more"),
        ("AAAAAA==", "got 4 bytes, want 5 or more"),
        ("AAAAAAB=", "non-canonical"),  # "AAAAAAA=" with a non-zero padding bit
        ("AAAA AAA=", "invalid base64"),
        ("AAAAAA", "invalid base64"),  # padding missing
    ],
)
def test_malformed_signature_blobs(b64: str, message: str) -> None:
    with pytest.raises(MalformedNoteError, match=message):
        parse_note(f"text\n\n— example.com/log {b64}\n")


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedNoteError, match="invalid UTF-8 at byte 4"):
        parse_note(b"text\xff\n\n\xe2\x80\x94 k AAAAAAA=\n")


def test_at_most_100_signatures(pair: tuple[Signer, Signer, str]) -> None:
    log, _, signed = pair
    text, (ours, _) = parse_note(signed)
    strangers = [f"— example.com/w{i} AAAAAAA=\n" for i in range(99)]
    assert (
        len(open_note(text + "\n" + "".join(strangers) + ours.line, [log.verifier()]).unverified)
        == 99
    )
    strangers.append("— example.com/w99 AAAAAAA=\n")
    with pytest.raises(MalformedNoteError, match="got 101, want at most 100"):
        open_note(text + "\n" + "".join(strangers) + ours.line, [log.verifier()])


def test_two_verifiers_for_one_name_and_id_are_ambiguous(pair: tuple[Signer, Signer, str]) -> None:
    class Colliding(Verifier):
        @property
        def key_id(self) -> int:
            return 0x12345678

    log, _, signed = pair
    first, second = Colliding("k", bytes(32)), Colliding("k", b"\x01" * 32)
    with pytest.raises(AmbiguousVerifierError, match="k\\+12345678: got 2 verifiers, want 1"):
        open_note(signed, [log.verifier(), first, second])
    # The same verifier twice is not ambiguous.
    assert open_note(signed, [log.verifier(), log.verifier()]).verified

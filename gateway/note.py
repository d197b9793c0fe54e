"""C2SP signed notes with Ed25519 keys: key strings, signing and opening (c2sp.org/signed-note).

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more lines

    — <key name> base64(4-byte big-endian key ID || signature)

(U+2014 EM DASH, space). The text MAY contain empty lines: the LAST blank line of the note
separates it from the signatures. Ed25519 keys (signature type 0x01) have the key ID
SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4] and travel as key strings

    verifier  <name>+<8 hex key ID>+base64(0x01 || public key)
    signer    PRIVATE+KEY+<name>+<8 hex key ID>+base64(0x01 || seed)

Behaviour follows golang.org/x/mod/sumdb/note (Open, Sign, NewVerifier, NewSigner) where the
spec leaves room: at most 100 signature lines; a repeated signature counts once; a known
key's failing signature rejects the whole note. Deliberately stricter than Go: key IDs in key
strings are 8 LOWERCASE hex digits, base64 must be canonical (RFC 4648 section 3.5), and key
names may not hold ASCII control characters (no note could carry them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# signed-note "Signature types": the byte hashed into the key ID and leading the key material.
ALG_ED25519: Final = 0x01
SIG_PREFIX: Final = "\u2014 "  # EM DASH, space
SIG_SEPARATOR: Final = "\n\n"  # the last one ends the text and starts the signatures
PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"
KEY_ID_SIZE: Final = 4
ED25519_KEY_SIZE: Final = 32  # public key and seed alike (RFC 8032 section 5.1.5)
ED25519_SIGNATURE_SIZE: Final = 64
# Go's note.Open: "Avoid spending forever parsing a note with many signatures."
# The spec: verifiers SHOULD cap signatures but MUST accept at least 16.
MAX_SIGNATURES: Final = 100

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # signed-note: no controls but newline
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")
# Go's unicode.IsSpace: these below U+0100; above it White_Space is exactly category Z.
_LATIN1_SPACES: Final = frozenset("\t\n\v\f\r \x85\xa0")
_SPACE_OR_SURROGATE: Final = frozenset(("Zs", "Zl", "Zp", "Cs"))


class NoteError(ValueError):
    """A note, key string or signature that is refused; str() says why."""


class KeyFormatError(NoteError):
    """A malformed verifier or signer key string, key name or key."""


class UnsupportedKeyTypeError(KeyFormatError):
    """A key string of a signature type this code does not verify (e.g. 0x05, RFC 6962)."""

    def __init__(self, key_type: int, supported: Collection[int]) -> None:
        self.key_type = key_type
        want = " or ".join(f"0x{t:02x}" for t in supported)
        super().__init__(f"unsupported signature type: got 0x{key_type:02x}, want {want}")


class KeyIdMismatchError(KeyFormatError):
    """A key string whose stated key ID is not the one computed from its name and key."""

    def __init__(self, name: str, stated: int, computed: int) -> None:
        self.stated, self.computed = stated, computed
        super().__init__(f"key ID of {name!r}: got {stated:08x}, want {computed:08x}")


class MalformedNoteError(NoteError):
    """Bytes or text that break the signed-note format."""


class InvalidSignatureError(NoteError):
    """A signature from a known key (name and key ID) that does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        self.name, self.key_id = name, key_id
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")


class AmbiguousVerifierError(NoteError):
    """Two different verifiers given for one (name, key ID)."""


class UnverifiedNoteError(NoteError):
    """A well-formed note with no signature from a known key; `.note` holds what was read."""

    def __init__(self, note: Note) -> None:
        self.note = note
        keys = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.unverified)
        super().__init__(f"note has no verifiable signatures (got unknown keys: {keys})")


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    """Return SHA-256(name || 0x0A || key_type || public_key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes((key_type,)) + public_key).digest()
    return int.from_bytes(digest[:KEY_ID_SIZE], "big")


def name_problem(name: str) -> str | None:
    """Return why `name` is not a valid key name, or None: it must be non-empty, without
    '+', Unicode spaces (as Go's unicode.IsSpace), control characters or lone surrogates."""
    if not name:
        return "key name: got '', want a non-empty name"
    for ch in name:
        category = unicodedata.category(ch)
        if ch == "+" or ch in _LATIN1_SPACES or ord(ch) < 0x20 or category in _SPACE_OR_SURROGATE:
            return f"key name {name!r}: got U+{ord(ch):04X}, want no '+', space or control"
    return None


def check_chars(text: str, what: str, error: type[NoteError] = MalformedNoteError) -> None:
    """Raise `error` unless `text` is encodable UTF-8 with no control character but newline."""
    bad = _CONTROL.search(text)
    if bad:
        got = f"U+{ord(bad.group()):04X} at offset {bad.start()}"
        raise error(f"{what}: got control character {got}, want none but newline")
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise error(f"{what}: got a lone surrogate at offset {e.start}, want UTF-8") from None


def check_text(text: str) -> bytes:
    """Return the UTF-8 of note text `text`. Raises MalformedNoteError unless it ends in a
    newline and holds no control character but newline (empty lines are allowed)."""
    if not text.endswith("\n"):
        raise MalformedNoteError(f"note text: got {text[-16:]!r} at its end, want a newline")
    check_chars(text, "note text")
    return text.encode()


def decode_base64(text: str, what: str, error: type[NoteError]) -> bytes:
    """Decode canonical standard base64 (RFC 4648 sections 3.5, 4); raise `error` otherwise.
    The message never repeats `text`, which may be a secret key."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise error(f"{what}: got invalid base64 ({e}), want standard base64") from None
    if base64.b64encode(raw).decode() != text:
        raise error(f"{what}: got non-canonical base64, want padding bits zero")
    return raw


def ed25519_public_key(seed: bytes) -> bytes:
    """Return the 32-byte Ed25519 public key of a 32-byte seed (RFC 8032 section 5.1.5)."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_key(name: str, key: bytes, what: str) -> None:
    """Raise KeyFormatError unless `name` is a valid key name and `key` has 32 bytes."""
    problem = name_problem(name)
    if problem:
        raise KeyFormatError(problem)
    if len(key) != ED25519_KEY_SIZE:
        raise KeyFormatError(f"{what}: got {len(key)} bytes, want {ED25519_KEY_SIZE}")


def encode_key(name: str, key_type: int, key_id: int, key: bytes) -> str:
    """Return `name+hexkeyid+base64(key_type || key)`, a vkey or an skey's tail."""
    return f"{name}+{key_id:08x}+{base64.b64encode(bytes((key_type,)) + key).decode()}"


def decode_key(
    key: str, key_types: Collection[int], *, private: bool = False
) -> tuple[str, int, bytes]:
    """Read a vkey `name+hexkeyid+base64(type || key)`, or with `private` an skey (the same
    after `PRIVATE+KEY+`, with a seed), as (name, type, 32-byte key or seed).
    Raises KeyFormatError, UnsupportedKeyTypeError if the type is not in `key_types`,
    KeyIdMismatchError if the stated key ID is not SHA-256(name || 0x0A || type || public)."""
    kind = "signer" if private else "verifier"
    if private and not key.startswith(PRIVATE_KEY_PREFIX):
        raise KeyFormatError(f"signer key: got no {PRIVATE_KEY_PREFIX!r} prefix, want one")
    name, _, rest = key.removeprefix(PRIVATE_KEY_PREFIX if private else "").partition("+")
    hex_id, _, b64 = rest.partition("+")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise KeyFormatError(f"{kind} key ID: got {hex_id!r}, want 8 lowercase hex digits")
    raw = decode_base64(b64, f"{kind} key of {name!r}", KeyFormatError)
    if not raw:
        raise KeyFormatError(f"{kind} key of {name!r}: got 0 bytes, want type byte and key")
    if raw[0] not in key_types:
        raise UnsupportedKeyTypeError(raw[0], key_types)
    check_key(name, raw[1:], f"{kind} key of {name!r}")
    public_key = ed25519_public_key(raw[1:]) if private else raw[1:]
    computed = key_id(name, raw[0], public_key)
    if int(hex_id, 16) != computed:
        raise KeyIdMismatchError(name, int(hex_id, 16), computed)
    return name, raw[0], raw[1:]


def signature_line(name: str, key_id: int, signature: bytes) -> str:
    """Return the note line `— name base64(key ID || signature)`, newline included."""
    blob = key_id.to_bytes(KEY_ID_SIZE, "big") + signature
    return f"{SIG_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: key name and 32-byte public key. Subclasses (cosignatures)
    change KEY_TYPE, the key string types they read (READS) and what is signed."""

    KEY_TYPE: ClassVar[int] = ALG_ED25519
    READS: ClassVar[tuple[int, ...]] = (ALG_ED25519,)
    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_key(self.name, self.public_key, "Ed25519 public key")

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.KEY_TYPE, self.public_key)

    def verify(self, text: str, signature: bytes) -> bool:
        """Return whether `signature` (after the key ID) is this key's over note text `text`."""
        return self.verify_message(text.encode(), signature)

    def verify_message(self, message: bytes, signature: bytes) -> bool:
        """Return whether `signature` is this key's Ed25519 signature of `message`."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> Self:
        """Read a verifier key string. Raises KeyFormatError (or its subclasses)."""
        name, _, public_key = decode_key(vkey, cls.READS)
        return cls(name, public_key)

    def to_vkey(self) -> str:
        """Return the verifier key string `name+hexkeyid+base64(KEY_TYPE || public key)`."""
        return encode_key(self.name, self.KEY_TYPE, self.key_id, self.public_key)


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer: key name and 32-byte seed (kept out of repr)."""

    KEY_TYPE: ClassVar[int] = ALG_ED25519
    READS: ClassVar[tuple[int, ...]] = (ALG_ED25519,)
    name: str
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key(self.name, self.seed, "Ed25519 seed")

    @property
    def public_key(self) -> bytes:
        return ed25519_public_key(self.seed)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.KEY_TYPE, self.public_key)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def sign(self, text: str) -> str:
        """Return this key's signature line for note text `text`, newline included.
        Raises MalformedNoteError if `text` is not note text (see check_text)."""
        return signature_line(self.name, self.key_id, self.sign_message(check_text(text)))

    def sign_message(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    @classmethod
    def generate(cls, name: str) -> Self:
        """Return a new signer with a random seed. Raises KeyFormatError for a bad name."""
        return cls(name, secrets.token_bytes(ED25519_KEY_SIZE))

    @classmethod
    def parse(cls, skey: str) -> Self:
        """Read a signer key string. Raises KeyFormatError (or its subclasses)."""
        name, _, seed = decode_key(skey, cls.READS, private=True)
        return cls(name, seed)

    def to_skey(self) -> str:
        """Return `PRIVATE+KEY+name+hexkeyid+base64(KEY_TYPE || seed)`: a secret."""
        return PRIVATE_KEY_PREFIX + encode_key(self.name, self.KEY_TYPE, self.key_id, self.seed)


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and b64 = base64(key ID || signature)."""

    name: str
    key_id: int
    b64: str

    @property
    def signature(self) -> bytes:
        """The signature bytes after the key ID."""
        return base64.b64decode(self.b64)[KEY_ID_SIZE:]

    @property
    def line(self) -> str:
        return f"{SIG_PREFIX}{self.name} {self.b64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text and its verified and unverified (unknown key) signatures."""

    text: str
    verified: tuple[Signature, ...] = ()
    unverified: tuple[Signature, ...] = ()


def sign_note(text: str, *signers: Signer) -> str:
    """Return note text `text` signed by each signer, in order.
    Requires 1 to MAX_SIGNATURES signers with distinct (name, key ID), else ValueError.
    Raises MalformedNoteError if `text` is not note text (see check_text)."""
    check_text(text)
    if not 1 <= len(signers) <= MAX_SIGNATURES:
        raise ValueError(f"signers: got {len(signers)}, want 1 to {MAX_SIGNATURES}")
    if len({(s.name, s.key_id) for s in signers}) != len(signers):
        raise ValueError("signers: got one key twice, want distinct keys")
    return text + "\n" + "".join(s.sign(text) for s in signers)


def parse_signature_line(line: str) -> Signature:
    """Read one `— name base64(key ID || signature)` line (final newline optional).
    Raises MalformedNoteError."""
    body = line.removesuffix("\n")
    check_chars(body, "signature line")
    if "\n" in body or not body.startswith(SIG_PREFIX):
        raise MalformedNoteError(f"signature line: got {body[:24]!r}, want '— <name> <base64>'")
    name, space, b64 = body.removeprefix(SIG_PREFIX).partition(" ")
    problem = "got no space after the key name" if not space else name_problem(name)
    if problem:
        raise MalformedNoteError(f"signature line: {problem}")
    raw = decode_base64(b64, f"signature of {name!r}", MalformedNoteError)
    if len(raw) <= KEY_ID_SIZE:
        raise MalformedNoteError(f"signature of {name!r}: got {len(raw)} bytes, want 5 or more")
    return Signature(name, int.from_bytes(raw[:KEY_ID_SIZE], "big"), b64)


def parse_note(note: str | bytes) -> tuple[str, tuple[Signature, ...]]:
    """Split `note` into its text and signatures WITHOUT verifying them: the spec says the
    text MUST be ignored until a trusted signature verifies. Raises MalformedNoteError."""
    if isinstance(note, bytes):
        try:
            note = note.decode()
        except UnicodeDecodeError as e:
            raise MalformedNoteError(f"note: got invalid UTF-8 at byte {e.start}") from None
    check_chars(note, "note")
    split = note.rfind(SIG_SEPARATOR)
    if split < 0:
        raise MalformedNoteError("note: got no blank line, want text, blank line, signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        got = repr(block[-16:]) if block else "nothing"
        raise MalformedNoteError(f"note end: got {got} after the last blank line, want a line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"signatures: got {len(lines)}, want at most {MAX_SIGNATURES}")
    return text, tuple(parse_signature_line(line) for line in lines)


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse `note` and verify the signatures of `verifiers`, matched by name AND key ID.
    Other signatures are kept unverified; a repeated signature counts once (as in Go).
    Raises MalformedNoteError, AmbiguousVerifierError for two verifiers of one (name, ID),
    InvalidSignatureError if a known key's signature fails, UnverifiedNoteError if none."""
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if known.setdefault(key, verifier) != verifier:
            raise AmbiguousVerifierError(f"key {key[0]}+{key[1]:08x}: got 2 verifiers, want 1")
    text, signatures = parse_note(note)
    verified: dict[tuple[str, int], Signature] = {}
    unverified: dict[Signature, None] = {}  # insertion-ordered set: identical lines once
    for sig in signatures:
        key = (sig.name, sig.key_id)
        if key not in known:
            unverified[sig] = None
        elif key not in verified:  # Go: "Drop repeated signatures by a single verifier."
            if not known[key].verify(text, sig.signature):
                raise InvalidSignatureError(*key)
            verified[key] = sig
    opened = Note(text, tuple(verified.values()), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError(opened)
    return opened


__all__ = [
    "ALG_ED25519",
    "ED25519_KEY_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "KEY_ID_SIZE",
    "MAX_SIGNATURES",
    "PRIVATE_KEY_PREFIX",
    "SIG_PREFIX",
    "SIG_SEPARATOR",
    "AmbiguousVerifierError",
    "InvalidSignatureError",
    "KeyFormatError",
    "KeyIdMismatchError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "UnsupportedKeyTypeError",
    "UnverifiedNoteError",
    "Verifier",
    "check_chars",
    "check_key",
    "check_text",
    "decode_base64",
    "decode_key",
    "ed25519_public_key",
    "encode_key",
    "key_id",
    "name_problem",
    "open_note",
    "parse_note",
    "parse_signature_line",
    "sign_note",
    "signature_line",
]

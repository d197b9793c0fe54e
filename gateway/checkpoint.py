"""C2SP transparency-log checkpoints and their Ed25519 witness cosignatures.

A checkpoint (c2sp.org/tlog-checkpoint) is the text of a signed note (gateway.note):

    <origin>                      non-empty; the log's identity
    <tree size>                   ASCII decimal, no leading zeros ("0" for the empty tree)
    <base64 root hash>            the RFC 6962 root at that size
    [<extension line> ...]        non-empty, opaque, NOT RECOMMENDED by the spec

each line ending in a newline. A cosignature/v1 (c2sp.org/tlog-cosignature, Ed25519) is a note
signature line whose key ID uses signature type 0x04, SHA-256(name || 0x0A || 0x04 || public
key)[:4], and whose signature is timestamp (8 bytes, big-endian POSIX seconds, at most
2^63 - 1) || the 64-byte Ed25519 signature of

    cosignature/v1\\ntime <timestamp>\\n<checkpoint text>

As transparency-dev/formats (note/note_cosigv1.go) does, cosigners read key strings of type
0x01 (a plain Ed25519 note key) or 0x04 and always sign and identify themselves with 0x04.
Stricter than formats' log.Checkpoint.Unmarshal, as the spec words it: no leading zeros or sign
in the size (which must fit a uint64), a canonical base64 root of exactly 32 bytes, no empty line.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Final

from gateway.note import (
    ALG_ED25519,
    ED25519_SIGNATURE_SIZE,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    Signature,
    Signer,
    Verifier,
    check_chars,
    decode_base64,
    open_note,
    parse_signature_line,
    sign_note,
    signature_line,
)
from gateway.rfc6962 import HASH_SIZE

# signed-note "Signature types": 0x04, "Timestamped Ed25519 witness cosignatures".
ALG_COSIGNATURE_V1: Final = 0x04
COSIGNATURE_V1_HEADER: Final = "cosignature/v1\n"  # domain separation (tlog-cosignature)
TIMESTAMP_SIZE: Final = 8
MAX_TIMESTAMP: Final = 2**63 - 1  # tlog-cosignature: "It MUST NOT exceed 2^63 - 1"
MAX_TREE_SIZE: Final = 2**64 - 1  # sizes are uint64 in transparency-dev/formats
COSIGNATURE_SIZE: Final = TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE

# No sign, no leading zero, no underscore or non-ASCII digit (all of which int() accepts);
# at most 20 digits, so int() never meets a huge string before the uint64 range check.
_DECIMAL = re.compile("0|[1-9][0-9]{0,19}")


class CheckpointFormatError(NoteError):
    """Note text that is not a tlog-checkpoint, or checkpoint fields that cannot be one."""


class OriginMismatchError(NoteError):
    """A verified checkpoint from another log than the one expected."""

    def __init__(self, got: str, want: str) -> None:
        self.got, self.want = got, want
        super().__init__(f"checkpoint origin: got {got!r}, want {want!r}")


class CosignerMismatchError(NoteError):
    """A cosignature line from another key (name or key ID) than the verifier's."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, 32-byte RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for what, line in (("origin", self.origin), *(("extension", e) for e in self.extensions)):
            if not line or "\n" in line:
                raise CheckpointFormatError(f"{what} line: got {line!r}, want a non-empty line")
            check_chars(line, f"{what} line", CheckpointFormatError)
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise CheckpointFormatError(f"tree size: got {size!r}, want an int in [0, 2**64)")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointFormatError(
                f"root hash: got {len(self.root_hash)} bytes, want {HASH_SIZE}"
            )

    def to_text(self) -> str:
        """Return the checkpoint as note text (every line newline-terminated)."""
        root = base64.b64encode(self.root_hash).decode()
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read checkpoint note text: at least three non-empty newline-terminated lines.
        Raises CheckpointFormatError; to_text() of the result gives `text` back."""
        if not text.endswith("\n"):
            raise CheckpointFormatError(f"checkpoint: got {text[-16:]!r} at its end, want '\\n'")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointFormatError(f"checkpoint: got {len(lines)} lines, want 3 or more")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise CheckpointFormatError(
                f"tree size: got {size[:24]!r}, want ASCII decimal without sign or leading zero"
            )
        root_hash = decode_base64(root, "root hash", CheckpointFormatError)
        return cls(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """Return `checkpoint` as a signed note from the log's `signer`."""
    return sign_note(checkpoint.to_text(), signer)


def open_checkpoint(
    note: str | bytes, verifier: Verifier, *, origin: str | None = None
) -> Checkpoint:
    """Return the checkpoint in `note` once `verifier`'s signature on it verifies; other
    signatures (witnesses, rotated keys) are ignored. Pass `origin` to require that log.
    Raises as gateway.note.open_note, CheckpointFormatError, OriginMismatchError."""
    checkpoint = Checkpoint.parse(open_note(note, [verifier]).text)
    if origin is not None and checkpoint.origin != origin:
        raise OriginMismatchError(checkpoint.origin, origin)
    return checkpoint


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """Return what a cosignature/v1 signs: "cosignature/v1\\ntime <timestamp>\\n" + text.
    Requires checkpoint text (else CheckpointFormatError) and 0 <= timestamp <= 2^63 - 1
    (else ValueError)."""
    Checkpoint.parse(checkpoint_text)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp: got {timestamp!r}, want 0 to 2**63 - 1")
    return f"{COSIGNATURE_V1_HEADER}time {timestamp}\n{checkpoint_text}".encode()


class CosignatureVerifier(Verifier):
    """A witness's cosignature/v1 verifier: Ed25519 public key, key ID of type 0x04."""

    KEY_TYPE = ALG_COSIGNATURE_V1
    READS = (ALG_ED25519, ALG_COSIGNATURE_V1)

    def verify(self, text: str, signature: bytes) -> bool:
        """Return whether `signature` (timestamp || Ed25519) is this witness's cosignature of
        checkpoint text `text`; False too if `text` is no checkpoint or the time is too big."""
        if len(signature) != COSIGNATURE_SIZE:
            return False
        try:
            message = cosigned_message(text, int.from_bytes(signature[:TIMESTAMP_SIZE], "big"))
        except ValueError:  # CheckpointFormatError included
            return False
        return self.verify_message(message, signature[TIMESTAMP_SIZE:])


class CosignatureSigner(Signer):
    """A witness's cosignature/v1 signer: Ed25519 seed, key ID of type 0x04."""

    KEY_TYPE = ALG_COSIGNATURE_V1
    READS = (ALG_ED25519, ALG_COSIGNATURE_V1)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def sign(self, text: str) -> str:
        """Return a cosignature line for checkpoint text `text` as of now (see cosign)."""
        return self.cosign(text, int(time.time()))

    def cosign(self, text: str, timestamp: int) -> str:
        """Return the cosignature line for checkpoint text `text` at POSIX time `timestamp`.
        Raises as cosigned_message."""
        signature = self.sign_message(cosigned_message(text, timestamp))
        stamped = timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signature
        return signature_line(self.name, self.key_id, stamped)


def cosign(checkpoint_text: str, signer: CosignatureSigner, timestamp: int) -> str:
    """Return `signer`'s cosignature line (append it to the note) for checkpoint text
    `checkpoint_text` at POSIX time `timestamp`. Raises as cosigned_message."""
    return signer.cosign(checkpoint_text, timestamp)


def cosignature_timestamp(signature: Signature) -> int:
    """Return the POSIX time a cosignature/v1 states. Raises MalformedNoteError unless it
    holds key ID, 8-byte timestamp and 64-byte signature."""
    raw = signature.signature
    if len(raw) != COSIGNATURE_SIZE:
        raise MalformedNoteError(f"cosignature: got {len(raw)} bytes, want {COSIGNATURE_SIZE}")
    return int.from_bytes(raw[:TIMESTAMP_SIZE], "big")


def verify_cosignature(checkpoint_text: str, line: str, verifier: CosignatureVerifier) -> int:
    """Return the timestamp of cosignature `line` once it verifies over `checkpoint_text`.
    Raises CheckpointFormatError, MalformedNoteError, CosignerMismatchError if the line is
    another key's, InvalidSignatureError if it does not verify."""
    Checkpoint.parse(checkpoint_text)
    signature = parse_signature_line(line)
    got, want = (signature.name, signature.key_id), (verifier.name, verifier.key_id)
    if got != want:
        raise CosignerMismatchError(
            f"cosignature key: got {got[0]}+{got[1]:08x}, want {want[0]}+{want[1]:08x}"
        )
    timestamp = cosignature_timestamp(signature)
    if not verifier.verify(checkpoint_text, signature.signature):
        raise InvalidSignatureError(*got)
    return timestamp


__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_SIZE",
    "COSIGNATURE_V1_HEADER",
    "MAX_TIMESTAMP",
    "MAX_TREE_SIZE",
    "TIMESTAMP_SIZE",
    "Checkpoint",
    "CheckpointFormatError",
    "CosignatureSigner",
    "CosignatureVerifier",
    "CosignerMismatchError",
    "OriginMismatchError",
    "cosign",
    "cosignature_timestamp",
    "cosigned_message",
    "open_checkpoint",
    "sign_checkpoint",
    "verify_cosignature",
]

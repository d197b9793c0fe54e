"""The checkpoint note of a public check bundle, written compactly (bundle version 2,
docs/protocol.md "Public check proof"): what the verifier can rebuild is left out.

The note the bundle carries is the checkpoint of size index + 1 (`origin`, that size, the
log's root) and its signature lines (the log's signature and its own timestamped
cosignature, each `— origin base64(key ID ‖ signature)`). The size is index + 1 and the
root is what the 0x04 entry's inclusion proof gives, so only the origin and each line's
signature bytes are written; the verifier rebuilds the note's exact text and checks the
signatures over it as over any note (a wrong entry or inclusion rebuilds another root, and
the log's signature fails). A note that is not exactly so rebuilt (another line, a name
other than the origin) is written whole.

    u16 0 ‖ 1 + n origin ‖ u8 k ‖ k × (u8 n ‖ n bytes: base64-decoded signature line)
    (a whole note: u16 n > 0 ‖ its n bytes of UTF-8)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from gateway import rfc6962
from gateway.merkle_verify import ProofError, root_from_inclusion_proof
from gateway.note import KEY_ID_SIZE, NoteError, parse_note, signature_line


def rebuild(
    origin: str, lines: Sequence[bytes], entry: bytes, index: int, inclusion: Sequence[bytes]
) -> str:
    """The note of size index + 1 of `origin` whose root the entry's inclusion gives, with
    one signature line per raw signature in `lines`. Raises ProofError for an inclusion
    proof of the wrong shape."""
    root = root_from_inclusion_proof(rfc6962.leaf_hash(entry), index, index + 1, inclusion)
    text = f"{origin}\n{index + 1}\n{base64.b64encode(root).decode()}\n"
    signatures = "".join(
        signature_line(origin, int.from_bytes(raw[:KEY_ID_SIZE], "big"), raw[KEY_ID_SIZE:])
        for raw in lines
    )
    return f"{text}\n{signatures}"


def compact(
    note: str, entry: bytes, index: int, inclusion: Sequence[bytes]
) -> tuple[str, list[bytes]] | None:
    """(origin, raw signature lines) if `note` is exactly what `rebuild` makes of them,
    else None (the note is written whole)."""
    try:
        text, signatures = parse_note(note)
        origin = text.split("\n", 1)[0]
        lines = [base64.b64decode(s.b64, validate=True) for s in signatures]
        if any(s.name != origin for s in signatures) or not 1 <= len(origin.encode()) <= 255:
            return None
        if any(not KEY_ID_SIZE <= len(raw) <= 255 for raw in lines) or len(lines) > 255:
            return None
        if rebuild(origin, lines, entry, index, inclusion) != note:
            return None
    except (NoteError, ProofError, binascii.Error, ValueError):
        return None
    return origin, lines

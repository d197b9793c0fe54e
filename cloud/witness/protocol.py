"""The add-checkpoint request and its size answer: the wire format of c2sp.org/tlog-witness
that the witness (cloud/witness/server.py) reads and the log's client (cloud/witness/client.py)
writes, kept apart from both so that the ledger's services import no witness server.

    POST /add-checkpoint   old <size>\\n  [<base64 proof hash>\\n ...]  \\n  <signed checkpoint>
    409 text/x.tlog.size   <size>\\n   (the size the witness last cosigned)

At most 63 proof lines (the spec's "MUST NOT send more than 63"); sizes are decimal without a
sign or leading zeros, below 2**64. A malformed request is MalformedRequest, the witness's 400.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from typing import ClassVar, Final

from gateway.checkpoint import MAX_TREE_SIZE
from gateway.note import NoteError, decode_base64
from gateway.rfc6962 import HASH_SIZE

ADD_CHECKPOINT_PATH: Final = "/add-checkpoint"
SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"  # the 409 body: "<size>\n", nothing else
OLD_PREFIX: Final = "old "
MAX_PROOF_LINES: Final = 63  # tlog-witness: "The client MUST NOT send more than 63"

_DECIMAL = re.compile("0|[1-9][0-9]{0,19}")  # ASCII, no sign, no leading zero


# --- errors: each carries the HTTP status the witness answers with ------------------------


class WitnessError(Exception):
    """A refused add-checkpoint request; str() says why, `status` is the HTTP answer."""

    status: ClassVar[int] = 500
    log_level: ClassVar[int] = logging.ERROR
    evidence: ClassVar[bool] = False  # keep the request: the log may have misbehaved


class MalformedRequest(WitnessError, ValueError):
    """A body, checkpoint or old size the spec does not allow."""

    status = 400
    log_level = logging.INFO


# --- the request body (the wire format of add-checkpoint) ----------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    """An add-checkpoint body: the size the client believes was last cosigned, the RFC 6962
    consistency proof from it, and the signed checkpoint note (other signatures allowed)."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "proof", tuple(self.proof))
        size = self.old_size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise MalformedRequest(f"old size: got {size!r}, want an int in [0, 2**64)")
        if len(self.proof) > MAX_PROOF_LINES:
            raise MalformedRequest(
                f"consistency proof: got {len(self.proof)} hashes, want at most {MAX_PROOF_LINES}"
            )
        for i, h in enumerate(self.proof):
            if len(h) != HASH_SIZE:
                raise MalformedRequest(f"proof hash {i}: got {len(h)} bytes, want {HASH_SIZE}")

    def encode(self) -> bytes:
        """Return the request body: old size line, proof lines, empty line, note."""
        lines = [
            f"{OLD_PREFIX}{self.old_size}",
            *(base64.b64encode(h).decode() for h in self.proof),
        ]
        return ("".join(f"{line}\n" for line in lines) + "\n" + self.note).encode()

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        """Read a request body. Raises MalformedRequest: bad UTF-8, no empty line, an old
        size line that is not `old <decimal without leading zero>`, a proof line that is not
        canonical base64 of 32 bytes, more than 63 of them. The note is read later."""
        try:
            text = body.decode()
        except UnicodeDecodeError as e:
            raise MalformedRequest(f"body: got invalid UTF-8 at byte {e.start}") from None
        # Header lines are never empty, so the first empty line ends them; the note keeps
        # its own (the last one in it starts its signatures).
        head, blank, note = text.partition("\n\n")
        if not blank:
            raise MalformedRequest("body: got no empty line, want one before the checkpoint")
        old, *proof_lines = head.split("\n")
        size = old.removeprefix(OLD_PREFIX)
        if not old.startswith(OLD_PREFIX) or not _DECIMAL.fullmatch(size):
            raise MalformedRequest(f"old size line: got {old[:32]!r}, want 'old <decimal>'")
        if len(proof_lines) > MAX_PROOF_LINES:
            raise MalformedRequest(
                f"consistency proof: got {len(proof_lines)} lines, want at most {MAX_PROOF_LINES}"
            )
        proof = []
        for i, line in enumerate(proof_lines):
            try:
                proof.append(decode_base64(line, f"proof line {i}", NoteError))
            except NoteError as e:
                raise MalformedRequest(str(e)) from None
        return cls(int(size), tuple(proof), note)


def parse_size_response(body: bytes) -> int:
    """Read a 409 text/x.tlog.size body, "<decimal>\\n". Raises ValueError otherwise."""
    line = body.removesuffix(b"\n").decode("ascii", "replace")
    if not body.endswith(b"\n") or not _DECIMAL.fullmatch(line) or int(line) > MAX_TREE_SIZE:
        raise ValueError(f"tree size response: got {body[:32]!r}, want '<decimal>\\n'")
    return int(line)

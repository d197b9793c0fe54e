"""Asking a witness to cosign a checkpoint: the client side of c2sp.org/tlog-witness
`add-checkpoint` (the request format: cloud/witness/protocol.py).

The log sends its signed checkpoint with a consistency proof from the size it believes the
witness last cosigned. A 409 with Content-Type text/x.tlog.size tells it that size: it
retries with a proof from there (WitnessConflict). Any other refusal is WitnessRefused.
The answer is one or more note signature lines to append to the checkpoint; the spec says
clients MUST ignore those of unknown keys, so check them (checkpoint.verify_cosignature)
before publishing: a bad line under a key a verifier trusts makes the whole note fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiohttp

from cloud.witness.protocol import (
    ADD_CHECKPOINT_PATH,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    parse_size_response,
)
from gateway.note import MAX_SIGNATURES, MalformedNoteError, parse_note, parse_signature_line


class WitnessRequestError(Exception):
    """A witness that did not cosign."""


class WitnessConflict(WitnessRequestError):
    """The witness last cosigned another size (`.size`): retry with a proof from it."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"witness last cosigned size {size}: send a proof from there")


class WitnessRefused(WitnessRequestError):
    """Any other answer than a cosignature or a size conflict (`.status`, `.text`)."""

    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text
        super().__init__(f"witness answered {status}: {text.strip()[:200]}")


async def request_cosignature(
    session: aiohttp.ClientSession,
    url: str,
    old_size: int,
    proof: Sequence[bytes],
    note: str,
) -> list[str]:
    """POST the signed checkpoint `note` with the consistency `proof` from `old_size` to the
    witness whose submission prefix is `url` (e.g. http://host:7380); return its signature
    lines, each ending in a newline. Raises WitnessConflict on 409 text/x.tlog.size,
    WitnessRefused on any other status or a 200 body of no signature lines,
    MalformedRequest (a ValueError) for arguments the spec forbids, aiohttp.ClientError."""
    body = AddCheckpointRequest(old_size, tuple(proof), note).encode()
    endpoint = url.rstrip("/") + ADD_CHECKPOINT_PATH
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    async with session.post(endpoint, data=body, headers=headers) as response:
        answer = await response.read()
        status, content_type = response.status, response.content_type
    text = answer.decode(errors="replace")
    if status == 409 and content_type == SIZE_CONTENT_TYPE:
        try:
            size = parse_size_response(answer)
        except ValueError as e:
            raise WitnessRefused(status, str(e)) from None
        raise WitnessConflict(size)
    if status != 200:
        raise WitnessRefused(status, text)
    try:
        return signature_lines(text)
    except MalformedNoteError as e:
        raise WitnessRefused(status, f"cosignature lines: {e}") from None


def signature_lines(text: str) -> list[str]:
    """Split a witness's 200 body into note signature lines ("— name base64\\n" each).
    Raises MalformedNoteError unless it is one or more such lines."""
    if not text.endswith("\n"):
        raise MalformedNoteError(f"got {text[-16:]!r} at the end, want signature lines")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    for line in lines:
        parse_signature_line(line)
    return lines


def add_cosignatures(note: str, lines: Iterable[str]) -> str:
    """Return signed note `note` with the signature `lines` appended, one per key: a line
    of a key (name and key ID) that already signed is skipped, as note verifiers would
    ignore it. Nothing is verified here: verify each line first.
    Raises MalformedNoteError for a malformed note or line, or beyond MAX_SIGNATURES."""
    _, signatures = parse_note(note)
    signed = {(s.name, s.key_id) for s in signatures}
    added: list[str] = []
    for line in lines:
        signature = parse_signature_line(line)
        if (signature.name, signature.key_id) not in signed:
            signed.add((signature.name, signature.key_id))
            added.append(signature.line)  # normalised: one final newline
    if len(signatures) + len(added) > MAX_SIGNATURES:
        raise MalformedNoteError(
            f"signatures: got {len(signatures) + len(added)}, want at most {MAX_SIGNATURES}"
        )
    return note + "".join(added)

"""The cloud's side of witnessing: each new checkpoint goes to every configured witness with
a consistency proof from the size that witness last cosigned, and the cosignatures that
verify are added to the checkpoint the log serves (c2sp.org/tlog-witness) and kept, with the
checkpoint, in the store: cosigned receipts are built from them (cloud/api/routes/receipts.py).

A witness that is down or refuses does not stop the log: the checkpoint is served without
its cosignature and the next checkpoint tries again. Refusals are logged loudly, for a
refusal means the witness saw a different history (or is misconfigured).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp

from cloud.services.log import LogService
from cloud.witness.client import WitnessConflict, WitnessRequestError, request_cosignature
from gateway.checkpoint import CosignatureVerifier, verify_cosignature
from gateway.note import NoteError, parse_note

log = logging.getLogger("pharmasync.cloud.witnessing")


@dataclass
class Peer:
    """A witness: where it listens, its cosignature key, what it last cosigned for us."""

    url: str
    verifier: CosignatureVerifier
    last_size: int = 0  # learnt from the witness on a 409; 0 until it cosigned anything
    cosigned: int = 0  # cosignatures obtained by this worker
    last_error: str | None = None


def parse_peer(spec: str) -> Peer:
    """Read `URL=VKEY` (a witness's address and cosignature verifier key). Raises ValueError."""
    url, sep, vkey = spec.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        raise ValueError(
            f"witness: got {spec!r}, want URL=VKEY (e.g. http://host:7380=name+id+key)"
        )
    return Peer(url, CosignatureVerifier.parse(vkey.strip()))


async def cosign_once(session: aiohttp.ClientSession, log_service: LogService, peer: Peer) -> bool:
    """Ask `peer` to cosign the log's latest checkpoint; return True once its verified
    cosignature is attached. Retries once from the size a 409 names."""
    cp = log_service.checkpoint
    if cp.size == 0 or (cp.size <= peer.last_size and peer.cosigned):
        return False
    for _ in range(2):
        proof: list[bytes] = []
        if peer.last_size:
            _, proof = await log_service.consistency(peer.last_size, cp.size)
        try:
            lines = await request_cosignature(session, peer.url, peer.last_size, proof, cp.note)
        except WitnessConflict as e:
            if e.size > cp.size:
                raise WitnessRequestError(f"witness has size {e.size} > ours {cp.size}") from None
            peer.last_size = e.size
            continue
        text, _ = parse_note(cp.note)
        good = []
        for line in lines:
            try:
                verify_cosignature(text, line, peer.verifier)
                good.append(line)
            except NoteError:
                continue  # another key's line, or a bad one: never publish it
        if not good:
            raise WitnessRequestError("no cosignature of the witness's key verified")
        await log_service.keep_cosignatures(cp.size, good)
        peer.last_size, peer.cosigned, peer.last_error = cp.size, peer.cosigned + 1, None
        return True
    return False


async def run(log_service: LogService, peers: list[Peer], interval: float = 1.0) -> None:
    """Until cancelled: whenever the checkpoint grew, ask every witness to cosign it."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            await log_service.refresh()
            for peer in peers:
                try:
                    await cosign_once(session, log_service, peer)
                except (WitnessRequestError, aiohttp.ClientError, TimeoutError, NoteError) as e:
                    if str(e) != peer.last_error:
                        log.warning("witness %s did not cosign: %s", peer.url, e)
                    peer.last_error = str(e)
            await asyncio.sleep(interval)

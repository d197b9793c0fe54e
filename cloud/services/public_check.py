"""The public check of a lot (GS1 Digital Link resolver, cloud/api/routes/resolver.py): its
public facts and their proof bundle (cloud/contracts/public_proof.py), without HTTP.

Under the contract service's lock (no block moves the State meanwhile) it proves the lot's
public records (lot, quality, recall, cold chain: the public leaves GET /v1/lots shows
everyone) against the latest state root, held by the 0x04 entry at `index`; then it takes
that entry's inclusion proof in the log of index + 1 entries and the checkpoint of exactly
that size: the first that includes the root, so a bundle says "as of" when the ledger first
stated those facts, and keeps verifying after the lot changes.

Which checkpoint, and its time: a signed checkpoint holds no time, and the ledger signs one
for the log's size when it grows, which need not be index + 1. So the first time a state
root is asked for, the ledger signs the checkpoint of size index + 1 (Ed25519 is
deterministic: the same note receipts carry, LogService.checkpoint_at) and adds the log's
own cosignature/v1 line (c2sp.org/tlog-cosignature: a timestamp and an Ed25519 signature
over it and the checkpoint, made with the log's key read as a cosigner's, as
transparency-dev's note_cosigv1 reads a type 0x01 key), timed while that root is still the
latest. It keeps that note (cloud/storage/stamped.py), first writer wins, so every worker
and every later answer gives the same bytes and the same "as of" time.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

from cloud.contracts import lots, pack_facts, public_facts, public_pack
from cloud.contracts.digital_link import DigitalLink
from cloud.contracts.engine import State
from cloud.contracts.public_proof import LOT_RECORDS, PACK_RECORDS, PackPart, PublicProof, proven
from cloud.services.contracts import ContractService, Head
from cloud.services.shared import Shared
from cloud.witness.client import add_cosignatures
from gateway.checkpoint import CosignatureSigner, cosignature_timestamp
from gateway.note import parse_note

KEPT_ANCHORS = 16  # state roots whose entry, inclusion proof and stamped checkpoint are kept


@dataclass(frozen=True)
class PublicCheck:
    """What the resolver answers: the facts read today, the proof bundle (None before the
    ledger committed any state root) and the time its checkpoint was stamped (POSIX s)."""

    facts: dict[str, Any]
    bundle: PublicProof | None
    as_of: int | None


class PublicCheckService:
    """Public checks over the contract service's State and the log (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService) -> None:
        self.shared = shared
        self.contracts = contracts
        log = shared.log
        self._stamper = CosignatureSigner(log.signer.name, log.signer.seed)
        self._anchors: dict[int, tuple[bytes, tuple[bytes, ...], str, int]] = {}

    async def lot(self, scanned: DigitalLink) -> PublicCheck:
        """Check the lot `scanned` names (its lot must be given). The facts are read on
        today's UTC date; the bundle proves the records they come from."""
        assert scanned.lot is not None, "the route checks a lot was given"
        gtin, lot = scanned.gtin, scanned.lot

        def prove(state: State) -> tuple[Head, int, list[tuple[Any, bytes | None, Any]]]:
            proofs = [(rtype, *state.prove(rtype, gtin, lot)) for rtype in LOT_RECORDS]
            return self.contracts.head, int(time.time()), proofs

        head, now, proofs = await self.contracts.read(prove)
        values = {rtype.name: value for rtype, value, _ in proofs}
        today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
        records = public_facts.PublicRecords.from_values(values)
        facts = public_facts.facts(records, today, scanned.expiry)
        if head.index is None:  # nothing committed yet: no root to prove against
            return PublicCheck(facts, None, None)
        index = head.index
        entry, inclusion, note, as_of = await self._anchor(index, now)
        bundle = PublicProof(
            gtin=gtin,
            lot=lot,
            serial=scanned.serial,
            index=index,
            entry=entry,
            inclusion=inclusion,
            checkpoint=note,
            records=tuple(proven(rtype, value, proof) for rtype, value, proof in proofs),
        )
        return PublicCheck(facts, bundle, as_of)

    async def pack(self, scanned: DigitalLink) -> PublicCheck:
        """Check the pack `scanned` names (its serial must be given; its lot may not be):
        the registration that holds its serial, its pack record and the public records of
        the lot it is in now, with the serial's inclusion in the registration's root
        (pack_facts.pack_proof_keys, serial_proof). An unregistered serial is answered with
        the scanned lot's records (its registration cannot be proven absent: suspect)."""
        assert scanned.serial is not None, "the route checks a serial was given"
        gtin, serial = scanned.gtin, scanned.serial

        def prove(state: State) -> tuple[Head, int, Any]:
            found = pack_facts.pack(state, gtin, serial)
            part = None
            keys: dict[str, tuple[str, ...]] = {}
            if found is not None:  # the contract's keys, and the lot's cold chain beside
                keys = {
                    rtype.name: fields
                    for rtype, fields in pack_facts.pack_proof_keys(state, gtin, serial)
                }
                keys[lots.COLDCHAIN.name] = (gtin, found.lot)
                path = pack_facts.serial_proof(state, gtin, serial)
                assert path is not None
                n = found.registration
                part = PackPart(found.registered_lot, n, path.index, path.size, path.path)
            elif scanned.lot is not None:  # unregistered: the scanned lot's facts only
                keys = {rtype.name: (gtin, scanned.lot) for rtype in LOT_RECORDS}
            rtypes = LOT_RECORDS + (PACK_RECORDS if found is not None else ())
            proofs = [
                (rtype, *state.prove(rtype, *keys[rtype.name]))
                for rtype in rtypes
                if rtype.name in keys
            ]
            return self.contracts.head, int(time.time()), (part, proofs)

        head, now, (part, proofs) = await self.contracts.read(prove)
        values = {rtype.name: value for rtype, value, _ in proofs}
        today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
        registration = None
        if part is not None:
            registration = (part.registered_lot, part.registration, values["registration"])
        facts = public_pack.facts(
            gtin,
            scanned.lot,
            serial,
            today,
            scanned.expiry,
            registration,
            values.get("pack"),
            public_facts.PublicRecords.from_values(values),
        )
        if head.index is None or not proofs:  # no root yet, or nothing to prove
            return PublicCheck(facts, None, None)
        entry, inclusion, note, as_of = await self._anchor(head.index, now)
        # about the lot scanned, or a lot-less link's registered lot (proofs: registered)
        named = scanned.lot
        if named is None and part is not None:
            named = part.registered_lot
        assert named is not None, "proofs exist: a lot was scanned or the serial is registered"
        bundle = PublicProof(
            gtin=gtin,
            lot=named,
            serial=serial,
            index=head.index,
            entry=entry,
            inclusion=inclusion,
            checkpoint=note,
            records=tuple(proven(rtype, value, proof) for rtype, value, proof in proofs),
            pack=part,
        )
        return PublicCheck(facts, bundle, as_of)

    async def _anchor(self, index: int, now: int) -> tuple[bytes, tuple[bytes, ...], str, int]:
        """The 0x04 entry at `index`, its inclusion proof in the log of index + 1 entries and
        that size's stamped checkpoint with its time: none of them ever changes, so the last
        few are kept (every check of any lot between two blocks asks for the same one)."""
        found = self._anchors.get(index)
        if found is None:
            await self.shared.log.refresh()  # the log's checkpoint reaches the entry
            _, inclusion = await self.shared.log.inclusion(index, index + 1)
            (entry,) = await self.shared.log.entries(index, index + 1)
            note, as_of = await self._stamped(index + 1, now)
            found = (entry, tuple(inclusion), note, as_of)
            if len(self._anchors) >= KEPT_ANCHORS:
                self._anchors.pop(next(iter(self._anchors)))  # the oldest
            self._anchors[index] = found
        return found

    async def _stamped(self, size: int, now: int) -> tuple[str, int]:
        """The kept stamped checkpoint of `size` and its time, made now if none is kept."""
        note = await self.shared.store.stamped_note(size)
        if note is None:
            signed = await self.shared.log.checkpoint_at(size)
            text, _ = parse_note(signed)
            line = self._stamper.cosign(text, now)
            note = await self.shared.store.keep_stamped(size, add_cosignatures(signed, [line]))
        return note, stamp_time(note, self._stamper)


def stamp_time(note: str, stamper: CosignatureSigner) -> int:
    """The time of the log's own cosignature line in a stamped note (POSIX seconds)."""
    for signature in parse_note(note)[1]:
        if (signature.name, signature.key_id) == (stamper.name, stamper.key_id):
            return cosignature_timestamp(signature)
    raise ValueError("stamped note without the log's cosignature line")


__all__ = ["PublicCheck", "PublicCheckService", "stamp_time"]

"""The contract service (docs/contracts.md §1): the participants and lots contracts
(cloud/contracts/catalog.py) running on the ledger.

State in memory, log as truth: at start the State and the lots' cold chains
(lots_coldchain.ColdChains) are rebuilt by following the log in order (contract_follow.py:
box registrations, stored transactions, the readings of boxes on lots). A submitted
envelope (parsed within tx.MAX_ENVELOPE by the route: 400/413) is checked and its signature
verified (400/401), its time checked against the server's clock (400 "tx.time"), then, in
one store.commit under the log's lock: what was appended since this worker last followed
the log (other workers' transactions and batches, box registrations) is applied first, in
log order, then the new one with what it does to the cold chains (403/409 as the engine
refuses it: nothing is written); its 0x03 entry (fresh salt), the 0x04 state root of the
block and its row are written together. A stored batch goes the same way (store_batch): in
its own commit, after its 0x01 entry, its first-stored readings of boxes on lots are applied
and, if they changed the state (an automatic quarantine), its 0x04 follows; a batch of boxes
on no lot costs a set lookup per reading. The rules run on a copy-on-write Fork
(contract_fork.py) merged into the State only after the commit returns, so neither a
refusal nor a failed commit moves what this worker answers; the cold chains change in
place, so a commit that fails after they changed makes the worker rebuild both by replay
before its next step.

The regulators are the log's (0x06 "regulator" entries, gateway/config_entry.py): the app
hands over those ConfigService.load_regulators found at start, `serve --regulator` only
bootstrapping them. A regulator change appended later takes effect here at the next start
(the engine's State fixes its regulators when built). Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any

from cloud.contracts import (
    access,
    auth,
    catalog,
    entries,
    lots,
    lots_coldchain,
    participants,
    policy,
    tx,
)
from cloud.contracts.engine import State, check_time
from cloud.contracts.lots_coldchain import ColdChains
from cloud.contracts.stateroot import StateRoot
from cloud.contracts.statetree_proof import Proof
from cloud.log.verified import Verified
from cloud.services import lot_history
from cloud.services.contract_follow import Position, apply_block, changed, first_stored, follow
from cloud.services.contract_fork import Fork
from cloud.services.shared import Shared
from cloud.storage import batches
from cloud.storage import contracts as stored
from cloud.storage import log as stored_log
from cloud.storage.engine import Tx
from cloud.storage.log import Commit
from cloud.storage.store import BatchStored, StoredTx
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger.contracts")

PUBLIC_LOT_RECORDS = (lots.LOT, lots.QUALITY, lots.RECALL)  # what GET /v1/lots shows


@dataclass(frozen=True)
class Head:
    """The state this worker has applied: its root and record count, `covers` (the log
    index of the last entry its latest root covers: a 0x03, or a batch's 0x01 whose
    readings changed the state; None: none yet) and `index` (the 0x04 entry that holds
    this root; None: none yet)."""

    root: bytes
    records: int
    covers: int | None
    index: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root.hex(),
            "records": self.records,
            "covers": self.covers,
            "index": self.index,
        }


@dataclass(frozen=True)
class Accepted:
    """An applied transaction: its 0x03 entry's index, its id, and the state after it."""

    index: int
    tx_id: str
    head: Head

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.tx_id,
            "root": self.head.root.hex(),
            "records": self.head.records,
            "root_index": self.head.index,
        }


@dataclass(frozen=True)
class PublicRecord:
    """A public record of a lot (or its absence) with its proof against `head.root`."""

    name: str
    value: dict[str, Any] | None
    proof: Proof


class ContractService:
    """The contracts' State, cold chains and engine over one Store (module docstring)."""

    def __init__(self, shared: Shared, regulators: Collection[bytes]) -> None:
        """Raises ValueError for a regulator key that is not 32 bytes (x-only)."""
        self.shared = shared
        self.engine = catalog.engine()
        self.regulators = frozenset(regulators)
        self._lock = asyncio.Lock()  # one fork of self.state at a time
        self.accepted = 0  # transactions this worker appended
        self._start_over()

    def _start_over(self) -> None:
        """Forget everything applied: the next load() replays the log from its start."""
        self.state = State(self.regulators)
        self.chains = ColdChains()
        self._at = Position(0)  # how far self.state follows the log
        # The cold chains changed inside a commit that has not returned yet: if it fails,
        # they are ahead of the State and both are rebuilt (_follow_to_end).
        self._ahead = False

    @property
    def head(self) -> Head:
        """What this worker has applied (without catching up: see current())."""
        at = self._at
        return Head(self.state.root, self.state.count, at.covers, at.root_index)

    async def load(self) -> Head:
        """Follow every log entry not yet followed, in log order (at start: all of them, the
        State and cold chains rebuilt by replay); return the head."""
        async with self._lock:
            await self._follow_to_end()
            return self.head

    async def _follow_to_end(self) -> None:
        """Follow the log up to its current size, a page per read (the lock held); first
        start over if a failed commit left the cold chains ahead of the State."""
        if self._ahead:
            log.warning("contracts: a commit failed after the cold chains changed; replaying")
            self._start_over()
        end = await self.shared.store.log_size()
        while self._at.synced < end:
            fork = Fork(self.state)
            self._ahead = True
            self._at = await self.shared.store.read(partial(self._page, fork.state, end))
            fork.merge()
            self._ahead = False

    def _page(self, state: State, end: int, db: Tx) -> Awaitable[Position]:
        """Follow the log from self._at towards `end` on `state`, a page at a time."""
        return follow(db, self.engine, state, self.chains, self._at, end)

    async def _catch_up(self, commit: Commit, state: State, end: int) -> Position:
        """Inside a commit: follow the log up to entry `end` on `state` (a fork's); return
        the position reached."""
        at = self._at
        while at.synced < end:
            self._ahead = True
            at = await follow(commit.tx, self.engine, state, self.chains, at, end)
        return at

    async def submit(self, envelope: object, now_ms: int | None = None) -> Accepted:
        """Apply a parsed transaction envelope (cloud/contracts/tx.py) and append it; return
        where.
        Raises LedgerError: 400 a malformed field ("envelope", "tx.<member>", "sig"), 401
        "signature", 403 "participant"/"access"/"role", 409 the rule."""
        refusals = self.shared.refusals
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            signed = await self.shared.off_loop(tx.from_envelope, envelope)
            check_time(signed, now_ms)
        except Refused as e:
            raise refusals.of(e) from None
        salt = entries.new_salt()
        async with self._lock:
            if self._ahead:  # what it follows of the log next is then the whole log
                await self._follow_to_end()
            fork = Fork(self.state)

            async def apply(commit: Commit) -> tuple[Position, StoredTx | Refused]:
                at = await self._catch_up(commit, fork.state, await stored_log.size(commit.tx))
                try:
                    apply_block(self.engine, fork.state, self.chains, [(signed, salt)])
                except Refused as e:  # before it changed anything: what was caught up stays
                    return at, e
                index = await commit.append([entries.entry_for(signed, salt).encode()])
                root = StateRoot(fork.state.count, index, fork.state.root)
                root_index = await commit.append([root.encode()])
                row = StoredTx(index, root_index, signed.canonical, signed.sig, salt)
                body = signed.body
                await stored.insert(
                    commit.tx,
                    stored.TxRow(
                        row,
                        body.contract,
                        bytes.fromhex(signed.id),
                        body.signer_xonly,
                        body.nonce,
                        body.time,
                    ),
                )
                return Position(root_index + 1, index, root_index), row

            self._ahead = True  # apply_block's cold-chain step, if the commit then fails
            try:
                at, row = await self.shared.store.commit(apply)
            except Refused as e:  # the store's
                raise refusals.of(e) from None
            fork.merge()
            self._at, self._ahead = at, False
            if isinstance(row, Refused):
                raise refusals.of(row)
            self.accepted += 1
            head = self.head
        body = signed.body
        log.info("tx %s %s/%s at %d", signed.id[:12], body.contract, body.type, row.log_index)
        await self.shared.appended()
        return Accepted(row.log_index, signed.id, head)

    async def store_batch(self, verified: Verified) -> BatchStored:
        """Store a verified batch (cloud/storage/batches.py store_batch) and, in the same
        commit, apply its first-stored readings of boxes on lots to the cold chains, with a
        0x04 state root after its 0x01 entry if they changed the state. Raises what
        store_batch raises (StoreConflict), storing nothing."""
        async with self._lock:
            if self._ahead:  # what it follows of the log next is then the whole log
                await self._follow_to_end()
            fork = Fork(self.state)

            async def apply(commit: Commit) -> tuple[BatchStored, Position | None]:
                done = await batches.store_batch(commit, verified)
                if not done.created:
                    return done, None
                index = done.log_index
                at = await self._catch_up(commit, fork.state, index)
                at = Position(index + 1, at.covers, at.root_index)
                sighted = (s.leaf for s in done.sightings)
                readings = first_stored(verified.readings, sighted, self.chains.attached)
                if readings:
                    self._ahead = True
                    if changed(self.chains.apply_readings(fork.state, readings, root=False)):
                        root = StateRoot(fork.state.count, index, fork.state.root)
                        root_index = await commit.append([root.encode()])
                        at = Position(root_index + 1, index, root_index)
                return done, at

            done, at = await self.shared.store.commit(apply)
            fork.merge()
            if at is not None:
                self._at = at
            self._ahead = False
            return done

    async def current(self) -> Head:
        """The latest state on the log: catch up on what other workers appended, then the
        head."""
        return await self.load()

    def _reader(self, reader: auth.Token | None) -> tuple[str, str | None]:
        """The read-matrix row of `reader` and its participant id (None: the public).
        Raises LedgerError 403 "participant" for a did that is no longer a regulator or
        an active participant."""
        if reader is None or reader.role not in access.READ:
            return "public", None
        try:
            who = participants.identify(self.state, reader.did)
        except Refused as e:
            raise self.shared.refusals.of(e) from None
        return who.role, who.id

    async def lot(
        self, gtin: str, lot: str, reader: auth.Token | None = None
    ) -> tuple[Head, list[PublicRecord], dict[str, Any] | None]:
        """The public records of a lot (identity, quality status, recall; each possibly
        absent) with their proofs against the latest root, and its custody record if the
        read policy (cloud/contracts/policy.py) shows it to `reader` (None: the public, or
        withheld). Caller checks gtin and lot. Raises LedgerError 403 "participant" for a
        reader whose did is no longer a regulator or an active participant."""
        await self.load()
        async with self._lock:
            found = []
            for rtype in PUBLIC_LOT_RECORDS:
                _, proof = self.state.prove(rtype, gtin, lot)
                found.append(PublicRecord(rtype.name, self.state.get(rtype, gtin, lot), proof))
            custody = None
            role, who = self._reader(reader)
            if who is not None:
                mine = lots.involved(self.state, gtin, lot, who)
                if policy.sees_custody(role, mine):
                    custody = self.state.get(lots.CUSTODY, gtin, lot)
            return self.head, found, custody

    async def history(
        self, gtin: str, lot: str, reader: auth.Token | None = None
    ) -> tuple[Head, dict[str, Any]]:
        """A lot's history from its records and the cold chains' aggregates (no reading is
        read again), as the read policy shows it to `reader` (policy.history_view: the
        quality-status cell, and the custody cells for who held it; lot_history renders
        it). Caller checks gtin and lot. Raises LedgerError 404 "lot" (never commissioned),
        403 "access" naming the cell for a signed-in reader the cell refuses, 403
        "participant" as lot() does."""
        await self.load()
        async with self._lock:
            role, who = self._reader(reader)
            try:
                found = lots_coldchain.history(self.state, self.chains, gtin, lot)
            except KeyError:
                raise self.shared.refusals.refuse(
                    "lot", f"lot {gtin}/{lot} was never commissioned", 404
                ) from None
            mine = who is not None and lots.involved(self.state, gtin, lot, who)
            view = policy.history_view(role, mine)
            if view is None:
                raise self.shared.refusals.refuse("access", policy.read_denied(role), 403)
            return self.head, lot_history.render(found, view)

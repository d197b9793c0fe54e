"""The contract service (docs/contracts.md §1): the participants and lots contracts
(cloud/contracts/catalog.py) running on the ledger.

State in memory, log as truth: at start the State is rebuilt by replaying the stored
transactions in log order (cloud/storage/contracts.py). A submitted envelope (parsed within
tx.MAX_ENVELOPE by the route: 400/413) is checked and its signature verified (400/401), its
time checked against the server's clock (400 "tx.time"), then, in one store.commit under the
log's lock: the transactions other workers appended since this worker's last are applied
first, in log order, then the new one (403/409 as the engine refuses it: nothing is
written); its 0x03 entry (fresh salt), the 0x04 state root of the block and its row are
written together. The rules run on a copy-on-write Fork (contract_fork.py) merged into the
State only after the commit returns, so neither a refusal nor a failed commit moves what
this worker answers.

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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from cloud.contracts import access, auth, catalog, entries, lots, participants, policy, tx
from cloud.contracts.engine import Applied, State, check_time
from cloud.contracts.stateroot import StateRoot
from cloud.contracts.statetree_proof import Proof
from cloud.services.contract_fork import Fork
from cloud.services.shared import Shared
from cloud.storage import contracts as stored
from cloud.storage.log import Commit
from cloud.storage.store import StoredTx
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger.contracts")
T = TypeVar("T")

PAGE = 1000  # stored transactions read per query, at start and when catching up
PUBLIC_LOT_RECORDS = (lots.LOT, lots.QUALITY, lots.RECALL)  # what GET /v1/lots shows


@dataclass(frozen=True)
class Head:
    """The state this worker has applied: its root and record count, `covers` (the log
    index of the last 0x03 entry applied; None: none yet) and `index` (the 0x04 entry that
    holds this root; None: none yet)."""

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
    """The contracts' State and engine over one Store (module docstring)."""

    def __init__(self, shared: Shared, regulators: Collection[bytes]) -> None:
        """Raises ValueError for a regulator key that is not 32 bytes (x-only)."""
        self.shared = shared
        self.engine = catalog.engine()
        self.state = State(regulators)
        self._applied = -1  # log index of the last 0x03 entry applied to self.state
        self._root_index: int | None = None
        self._lock = asyncio.Lock()  # one fork of self.state at a time
        self.accepted = 0  # transactions this worker appended
        # Told each applied transaction, in log order, once the State holds it: f(the log
        # index of its 0x03 entry, what it changed). What is derived from the log beside the
        # State (feeds, the trace index: cloud/services/feeds.py, traces.py) follows it here.
        self.listeners: list[Callable[[int, Applied], None]] = []

    @property
    def head(self) -> Head:
        """What this worker has applied (without catching up: see current())."""
        covers = None if self._applied < 0 else self._applied
        return Head(self.state.root, self.state.count, covers, self._root_index)

    async def load(self) -> Head:
        """Apply every stored transaction not yet applied, in log order (at start: all of
        them, the State rebuilt by replay); return the head."""
        async with self._lock:
            while page := await self.shared.store.contract_txs(self._applied, PAGE):
                fork = Fork(self.state)
                told = self._catch_up(fork.state, page)
                fork.merge()
                self._tell(told)
                self._applied, self._root_index = page[-1].log_index, page[-1].root_index
            return self.head

    def _catch_up(self, state: State, rows: list[StoredTx]) -> list[tuple[int, Applied]]:
        """Apply stored transactions to `state` in order; return what each changed, by log
        index (for the listeners, once merged). A refusal means the stored transactions and
        the rules have parted: a RuntimeError (500), never a client's."""
        told = []
        for row in rows:
            try:
                signed = tx.from_record(row.canonical, row.sig)
                told.append((row.log_index, self.engine.apply(state, signed, row.salt, root=False)))
            except Refused as e:
                raise RuntimeError(f"stored transaction at {row.log_index} refused: {e}") from e
        return told

    def _tell(self, told: list[tuple[int, Applied]]) -> None:
        """Hand merged changes to the listeners, in log order."""
        for index, applied in told:
            for listener in self.listeners:
                listener(index, applied)

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
            fork = Fork(self.state)
            told: list[tuple[int, Applied]] = []

            async def apply(commit: Commit) -> StoredTx:
                last = self._applied  # other workers' transactions since, first
                while page := await stored.after(commit.tx, last, PAGE):
                    told.extend(self._catch_up(fork.state, page))
                    last = page[-1].log_index
                applied = self.engine.apply(fork.state, signed, salt)  # refusal: rollback
                assert applied.root is not None and applied.records is not None
                index = await commit.append([entries.entry_for(signed, salt).encode()])
                told.append((index, applied))
                root = StateRoot(applied.records, index, applied.root)
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
                return row

            try:
                row = await self.shared.store.commit(apply)
            except Refused as e:  # the engine's refusal, or the store's
                raise refusals.of(e) from None
            fork.merge()
            self._tell(told)
            self._applied, self._root_index = row.log_index, row.root_index
            self.accepted += 1
            head = self.head
        body = signed.body
        log.info("tx %s %s/%s at %d", signed.id[:12], body.contract, body.type, row.log_index)
        await self.shared.appended()
        return Accepted(row.log_index, signed.id, head)

    async def current(self) -> Head:
        """The latest state on the log: catch up on what other workers appended, then the
        head."""
        return await self.load()

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
            if reader is not None and reader.role in access.READ:
                try:
                    who = participants.identify(self.state, reader.did)
                except Refused as e:
                    raise self.shared.refusals.of(e) from None
                mine = lots.involved(self.state, gtin, lot, who.id)
                if policy.sees_custody(who.role, mine):
                    custody = self.state.get(lots.CUSTODY, gtin, lot)
            return self.head, found, custody

    async def read(self, query: Callable[[State], T]) -> T:
        """Catch up on the log, then run `query` on the State under the service's lock (no
        fork or merge moves it meanwhile) and return its answer. `query` must not keep or
        change what it reads."""
        await self.load()
        async with self._lock:
            return query(self.state)

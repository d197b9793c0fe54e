"""The contract service (docs/contracts.md §1): the participants and lots contracts
(cloud/contracts/catalog.py) running on the ledger.

State in memory, log as truth: at start the State is rebuilt by replaying the stored
transactions in log order (cloud/storage/contracts.py). A submitted envelope (parsed within
tx.MAX_ENVELOPE by the route: 400/413) is checked and its signature verified (400/401), its
time checked against the server's clock (400 "tx.time"), then it waits for its block (group
commit: the transactions that arrived while the previous block was committing, at most
MAX_BLOCK, in arrival order). In one store.commit under the log's lock: the transactions
other workers appended since this worker's last are applied first, in log order, then the
block's, each all or nothing (403/409 as the engine refuses one: it is left out, the others
stay); their 0x03 entries (fresh salts), one 0x04 state root after them and their rows are
written together, one fsync and one signed checkpoint per block. The rules run on a
copy-on-write Fork (contract_fork.py) merged into the State only after the commit returns,
so neither a refusal nor a failed commit moves what this worker answers.

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
from dataclasses import dataclass, field
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
# Group commit: transactions that arrive while a block is being committed wait and go in
# the next block together (one database transaction, one fsync, one 0x04 root, one
# checkpoint), at most this many.
MAX_BLOCK = 256


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


@dataclass(eq=False)
class _Queued:
    """A verified transaction waiting for its block: its commitment salt, whether a block
    took it, and what became of it (Accepted, or the refusal)."""

    signed: tx.SignedTx
    salt: bytes
    taken: bool = False
    outcome: asyncio.Future[Accepted | Refused] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
        self._queue: list[_Queued] = []  # verified, waiting for a block (submit)
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
        queued = _Queued(signed, entries.new_salt())
        self._queue.append(queued)
        try:
            await self._lead(queued)
        except asyncio.CancelledError:
            if not queued.taken:  # cancelled while it waited: it is never committed
                self._queue.remove(queued)
            raise
        outcome = await queued.outcome
        if isinstance(outcome, Refused):
            raise refusals.of(outcome) from None
        return outcome

    async def _lead(self, queued: _Queued) -> None:
        """Wait for the lock; unless an earlier block took `queued`, commit the next block
        (this request leads it), sign its checkpoint and answer each of its transactions.
        Raises what the block's commit raises (every follower gets it too)."""
        async with self._lock:
            block = self._take(queued)
            if not block:
                return
            try:
                outcomes = await self._commit_block(block)
            except BaseException as e:  # the block failed, or this request was cancelled
                for waiting in block:
                    if waiting is queued:
                        continue  # raised to this request
                    if isinstance(e, asyncio.CancelledError):
                        waiting.outcome.cancel()
                    else:
                        waiting.outcome.set_exception(e)
                raise
        try:
            await self.shared.appended()
        finally:
            for waiting, outcome in zip(block, outcomes, strict=True):
                waiting.outcome.set_result(outcome)

    def _take(self, queued: _Queued) -> list[_Queued]:
        """Under the lock: the next block (up to MAX_BLOCK queued transactions, in arrival
        order) if `queued` is still waiting, else [] (an earlier block took it)."""
        if queued.taken:
            return []
        block = self._queue[:MAX_BLOCK]
        del self._queue[:MAX_BLOCK]
        for waiting in block:
            waiting.taken = True
        return block

    async def _commit_block(self, block: list[_Queued]) -> list[Accepted | Refused]:
        """Under the lock: apply `block` in order in one store.commit, each transaction all
        or nothing (a refused one is left out, the others stay), then one 0x04 root; return
        each one's Accepted or refusal. If the store refuses the block, each transaction is
        committed again as a block of its own, so only the one at fault is refused."""
        fork = Fork(self.state)
        outcomes: list[Accepted | Refused | tx.SignedTx] = []  # SignedTx: not yet answered
        told: list[tuple[int, Applied]] = []  # for the listeners, once committed

        async def apply(commit: Commit) -> list[StoredTx]:
            outcomes.clear()
            told.clear()
            last = self._applied  # other workers' transactions since, first
            while page := await stored.after(commit.tx, last, PAGE):
                told.extend(self._catch_up(fork.state, page))
                last = page[-1].log_index
            accepted = []
            applied = []
            for waiting in block:
                try:  # a refusal leaves the fork as it was
                    done = self.engine.apply(fork.state, waiting.signed, waiting.salt, root=False)
                except Refused as e:
                    outcomes.append(e)
                    continue
                outcomes.append(waiting.signed)  # replaced by its Accepted below
                accepted.append(waiting)
                applied.append(done)
            if not accepted:
                return []
            first = await commit.append(
                [entries.entry_for(w.signed, w.salt).encode() for w in accepted]
            )
            told.extend((first + n, done) for n, done in enumerate(applied))
            last_tx = first + len(accepted) - 1
            root = StateRoot(fork.state.count, last_tx, fork.state.root)
            root_index = await commit.append([root.encode()])
            rows = []
            for n, waiting in enumerate(accepted):
                signed, body = waiting.signed, waiting.signed.body
                row = StoredTx(first + n, root_index, signed.canonical, signed.sig, waiting.salt)
                tx_id = bytes.fromhex(signed.id)
                rows.append(
                    stored.TxRow(
                        row, body.contract, tx_id, body.signer_xonly, body.nonce, body.time
                    )
                )
            await stored.insert_many(commit.tx, rows)
            return [r.stored for r in rows]

        try:
            rows = await self.shared.store.commit(apply)
        except Refused as e:  # the store's: which transaction is at fault is not known
            if len(block) == 1:
                return [e]
            return [o for waiting in block for o in await self._commit_block([waiting])]
        if not rows:  # every one refused: nothing written, the fork is dropped
            return [o for o in outcomes if not isinstance(o, tx.SignedTx)]
        fork.merge()
        self._tell(told)
        self._applied, self._root_index = rows[-1].log_index, rows[-1].root_index
        self.accepted += len(rows)
        head = self.head
        answers = iter(rows)
        for n, outcome in enumerate(outcomes):
            if isinstance(outcome, tx.SignedTx):
                row = next(answers)
                body = outcome.body
                log.info(
                    "tx %s %s/%s at %d", outcome.id[:12], body.contract, body.type, row.log_index
                )
                outcomes[n] = Accepted(row.log_index, outcome.id, head)
        return [o for o in outcomes if not isinstance(o, tx.SignedTx)]

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

"""The contract service (docs/contracts.md §1): the participants and lots contracts
(cloud/contracts/catalog.py) running on the ledger.

State in memory, log as truth: at start the State and the lots' cold chains
(lots_coldchain.ColdChains) are rebuilt by following the log in order (contract_follow.py:
box registrations, stored transactions, the readings of boxes on lots). A submitted
envelope (parsed within tx.MAX_ENVELOPE by the route: 400/413) is checked and its signature
verified (400/401) on the verification threads, the envelopes that arrive in one turn of
the event loop handed over together (handoff.py), its time checked against the server's
clock (400 "tx.time"), then it waits for its block (group commit: the transactions that
arrived while the previous block was committing, at most MAX_BLOCK, in arrival order). In
one store.commit under the log's lock: what was appended since this worker last followed
the log (other workers' transactions and batches, box registrations) is applied first, in
log order, then the block's transactions, each all or nothing (403/409 as the engine
refuses one: it is left out, the others stay), then what the block does to the cold chains;
their 0x03 entries (fresh salts), one 0x04 state root after them and their rows are written
together, one fsync and one signed checkpoint per block. A stored batch goes the same way
(store_batch): in its own commit, after its 0x01 entry, its first-stored readings of boxes
on lots are applied and, if they changed the state (an automatic quarantine), its 0x04
follows; a batch of boxes on no lot costs a set lookup per reading. The rules run on a
copy-on-write Fork (contract_fork.py) merged into the State only after the commit returns,
so neither a refusal nor a failed commit moves what this worker answers; the cold chains
change in place, so a commit that fails after they changed makes the worker rebuild both by
replay before its next step. Listeners (feeds, the trace index) are told every change, the
cold chains' included, in log order once merged.

The regulators are the log's (0x06 "regulator" entries, gateway/config_entry.py), followed
in log order like the box registrations (contract_follow.py): each transaction is checked
under the regulators of its own log position, so a handover takes effect at its entry, in
every worker and in every replay, and never re-judges the transactions before it.
`serve --regulator` only writes the bootstrap (ConfigService.load_regulators). Raises
LedgerError (cloud/services/refusals.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

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
from cloud.contracts.engine import Applied, State, check_time
from cloud.contracts.lots_coldchain import ColdChains
from cloud.contracts.stateroot import StateRoot
from cloud.contracts.statetree_proof import Proof
from cloud.log.verified import Verified
from cloud.services import lot_history
from cloud.services.contract_follow import Position, changed, first_stored, follow
from cloud.services.contract_fork import Fork
from cloud.services.handoff import Handoff
from cloud.services.refusals import LedgerError
from cloud.services.shared import Shared
from cloud.storage import batches
from cloud.storage import contracts as stored
from cloud.storage.engine import Tx
from cloud.storage.log import Commit
from cloud.storage.store import BatchStored, StoredTx
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger.contracts")
T = TypeVar("T")
Told = list[tuple[int, Applied]]  # (log index, what changed) for the listeners

PUBLIC_LOT_RECORDS = (lots.LOT, lots.QUALITY, lots.RECALL)  # what GET /v1/lots shows
# Group commit: transactions that arrive while a block is being committed wait and go in
# the next block together (one database transaction, one fsync, one 0x04 root, one
# checkpoint), at most this many.
MAX_BLOCK = 256
# Transaction types taken only through a route of their own, which checks what their rule
# cannot: a lots `statement` comes with its document to POST /epcis/capture, which compares
# the document's events with the ledger (the rule keeps the hash alone); posted as a bare
# transaction it would put on the ledger a statement no one checked.
OWN_ROUTE = {("lots", "statement"): "POST /epcis/capture"}


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
    """The contracts' State, cold chains and engine over one Store (module docstring)."""

    def __init__(self, shared: Shared, regulators: Collection[bytes] = ()) -> None:
        """`regulators`: those before the log names any (its 0x06 entries then decide).
        Raises ValueError for a regulator key that is not 32 bytes (x-only)."""
        self.shared = shared
        self.engine = catalog.engine()
        self.regulators = frozenset(regulators)
        self._lock = asyncio.Lock()  # one fork of self.state at a time
        self._queue: list[_Queued] = []  # verified, waiting for a block (submit)
        # parse and verify envelopes on the verification threads, a turn's arrivals together
        self._parse = Handoff(tx.from_envelope, shared.verify_pool, shared.verify_threads)
        self.accepted = 0  # transactions this worker appended
        # Told each change, in log order, once the State holds it: f(the log index of the
        # entry that caused it, what it changed): each transaction's (its 0x03), the cold
        # chains' after a block (its last 0x03) or a batch (its 0x01). What is derived from
        # the log beside the State (feeds, the trace index: cloud/services/feeds.py,
        # traces.py) follows it here.
        self.listeners: list[Callable[[int, Applied], None]] = []
        self._told = -1  # the log index of the last change told: a rebuild tells none twice
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
        start over if a failed commit left the cold chains ahead of the State (the
        listeners are not told again what they were told before)."""
        if self._ahead:
            log.warning("contracts: a commit failed after the cold chains changed; replaying")
            self._start_over()
        end = await self.shared.store.log_size()
        while self._at.synced < end:
            fork = Fork(self.state)
            told: Told = []
            self._ahead = True
            self._at = await self.shared.store.read(partial(self._page, fork.state, end, told))
            fork.merge()
            self._ahead = False
            self._tell(told)

    def _page(self, state: State, end: int, told: Told, db: Tx) -> Awaitable[Position]:
        """Follow the log from self._at towards `end` on `state`, a page at a time."""
        return follow(db, self.engine, state, self.chains, self._at, end, told)

    async def _catch_up(self, commit: Commit, state: State, end: int, told: Told) -> Position:
        """Inside a commit: follow the log up to entry `end` on `state` (a fork's); return
        the position reached."""
        at = self._at
        while at.synced < end:
            self._ahead = True
            at = await follow(commit.tx, self.engine, state, self.chains, at, end, told)
        return at

    def _tell(self, told: Told) -> None:
        """Hand merged changes to the listeners, in log order, but those told before a
        rebuild (by the log index of their entry)."""
        before = self._told
        for index, applied in told:
            if index > before:
                for listener in self.listeners:
                    listener(index, applied)
                self._told = index

    async def submit(
        self, envelope: object, now_ms: int | None = None, *, own_route: bool = False
    ) -> Accepted:
        """Apply a parsed transaction envelope (cloud/contracts/tx.py) and append it; return
        where. `own_route`: the caller is the route of a type in OWN_ROUTE, which checked it.
        Raises LedgerError: 400 a malformed field ("envelope", "tx.<member>", "sig"; "tx.type"
        a type of OWN_ROUTE from elsewhere), 401 "signature", 403 "participant"/"access"/
        "role", 409 the rule."""
        (outcome,) = await self.submit_many([envelope], now_ms, own_route=own_route)
        if isinstance(outcome, LedgerError):
            raise outcome
        return outcome

    async def submit_many(
        self, envelopes: Sequence[object], now_ms: int | None = None, *, own_route: bool = False
    ) -> list[Accepted | LedgerError]:
        """Apply parsed envelopes as submit() does each, in their order (they join the
        blocks together: one that depends on an earlier one sees it applied); return each
        one's Accepted or refusal (the LedgerError submit would raise: each transaction is
        all or nothing on its own, a refusal leaves the others). Raises what a block's
        commit raises (the store failing)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        checked = await asyncio.gather(*(self._check(e, now_ms, own_route) for e in envelopes))
        queued = [q for q in checked if isinstance(q, _Queued)]
        self._queue.extend(queued)  # in their order, after whatever is waiting
        try:
            for waiting in queued:
                await self._lead(waiting)  # at once if an earlier block took it
        except BaseException:
            for waiting in queued:
                if not waiting.taken:  # never committed
                    self._queue.remove(waiting)
            raise
        refusals = self.shared.refusals
        answers: list[Accepted | LedgerError] = []
        for one in checked:
            if isinstance(one, _Queued):
                outcome = await one.outcome
                answers.append(refusals.of(outcome) if isinstance(outcome, Refused) else outcome)
            else:
                answers.append(one)
        return answers

    async def _check(
        self, envelope: object, now_ms: int, own_route: bool = False
    ) -> _Queued | LedgerError:
        """Parse and verify an envelope on the verification threads and check its time and
        wire size (an entry of a batch is bounded as a body of its own) and that a type of
        OWN_ROUTE came through it; return it ready to queue, or its refusal."""
        try:
            signed = await self._parse(envelope)
            check_time(signed, now_ms)
        except Refused as e:
            return self.shared.refusals.of(e)
        route = OWN_ROUTE.get((signed.body.contract, signed.body.type))
        if route is not None and not own_route:
            kind = f"{signed.body.contract} {signed.body.type}"
            detail = f"tx.type: a {kind} is taken only by {route}, with what it states"
            return self.shared.refusals.refuse("tx.type", detail, 400)
        size = tx.wire_size(signed)
        most = tx.max_envelope(signed.body.contract, signed.body.type)
        if size > most:
            detail = f"transaction: got {size} bytes, want at most {most}"
            return self.shared.refusals.refuse("transaction", detail, 413)
        return _Queued(signed, entries.new_salt())

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
        or nothing (a refused one is left out, the others stay), then what they do to the
        cold chains, then one 0x04 root; return each one's Accepted or refusal. If the store
        refuses the block, each transaction is committed again as a block of its own, so
        only the one at fault is refused."""
        if self._ahead:  # a failed commit: what it follows of the log next is all of it
            await self._follow_to_end()
        fork = Fork(self.state)
        outcomes: list[Accepted | Refused | tx.SignedTx] = []  # SignedTx: not yet answered
        told: Told = []  # for the listeners, once committed

        async def apply(commit: Commit) -> tuple[Position, list[StoredTx]]:
            outcomes.clear()
            told.clear()
            end = await commit.size()
            at = await self._catch_up(commit, fork.state, end, told)  # the log's, first
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
                return at, []  # nothing written; what was caught up is the log's: it stays
            self._ahead = True  # the cold chains change in place from here
            chained = self.chains.after_transactions(fork.state, applied, root=False)
            # The 0x03 entries and the 0x04 root after them in one append (one lookup of the
            # log's frontier, one insert of entries and one of nodes): the log's lock is
            # held, so the first entry's index is the size read above.
            first = end
            last_tx = first + len(accepted) - 1
            root = StateRoot(fork.state.count, last_tx, fork.state.root)
            written = [entries.entry_for(w.signed, w.salt).encode() for w in accepted]
            if await commit.append([*written, root.encode()]) != first:
                raise RuntimeError("the log grew under its lock")
            root_index = last_tx + 1
            told.extend((first + n, done) for n, done in enumerate(applied))
            told.append((last_tx, chained))
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
            return Position(root_index + 1, last_tx, root_index), [r.stored for r in rows]

        try:
            at, rows = await self.shared.store.commit(apply)
        except Refused as e:  # the store's: which transaction is at fault is not known
            if len(block) == 1:
                return [e]
            return [o for waiting in block for o in await self._commit_block([waiting])]
        fork.merge()
        self._at, self._ahead = at, False
        self._tell(told)
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

    async def store_batch(self, verified: Verified) -> BatchStored:
        """Store a verified batch (cloud/storage/batches.py store_batch) and, in the same
        commit, apply its first-stored readings of boxes on lots to the cold chains, with a
        0x04 state root after its 0x01 entry if they changed the state. Raises what
        store_batch raises (StoreConflict), storing nothing."""
        async with self._lock:
            if self._ahead:  # what it follows of the log next is then the whole log
                await self._follow_to_end()
            fork = Fork(self.state)
            told: Told = []

            async def apply(commit: Commit) -> tuple[BatchStored, Position | None]:
                told.clear()
                done = await batches.store_batch(commit, verified)
                if not done.created:
                    return done, None
                index = done.log_index
                at = await self._catch_up(commit, fork.state, index, told)
                at = Position(index + 1, at.covers, at.root_index)
                sighted = (s.leaf for s in done.sightings)
                readings = first_stored(verified.readings, sighted, self.chains.attached)
                if readings:
                    self._ahead = True
                    chained = self.chains.apply_readings(fork.state, readings, root=False)
                    if changed(chained):
                        told.append((index, chained))
                        root = StateRoot(fork.state.count, index, fork.state.root)
                        root_index = await commit.append([root.encode()])
                        at = Position(root_index + 1, index, root_index)
                return done, at

            done, at = await self.shared.store.commit(apply)
            fork.merge()
            if at is not None:
                self._at = at
            self._ahead = False
            self._tell(told)
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
        quality-status cell; policy.sees_leg: who held each leg; lot_history renders it).
        Caller checks gtin and lot. Raises LedgerError 404 "lot" (never commissioned), 403
        "access" naming the cell for a signed-in reader the cell refuses, 403 "participant"
        as lot() does."""
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
            seen = [leg.leg for leg in found.legs if self._sees_leg(role, mine, who, leg)]
            return self.head, lot_history.render(found, view, seen)

    def _sees_leg(
        self, role: str, involved: bool, who: str | None, leg: lots_coldchain.LegHistory
    ) -> bool:
        """Whether the reader sees who held `leg` (policy.sees_leg): a shipment by its leg's
        flow column, a storage by whose it is."""
        if leg.shipment is None:
            holder = who is not None and leg.leg == f"storage:{who}"
            return policy.sees_leg(role, involved, None, holder)
        shipment = self.state.get(lots.SHIPMENT, leg.shipment)
        assert shipment is not None, "a shipment's leg names a shipment"
        return policy.sees_leg(role, involved, shipment["leg"], False)

    async def read(self, query: Callable[[State], T]) -> T:
        """Catch up on the log, then run `query` on the State under the service's lock (no
        fork or merge moves it meanwhile) and return its answer. `query` must not keep or
        change what it reads."""
        await self.load()
        async with self._lock:
            return query(self.state)

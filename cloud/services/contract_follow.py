"""What the contracts follow of the log, applied in log order (docs/contracts.md §1 and §4):
the registry's box registrations, the regulators, the stored transactions block by block,
and the readings each batch first stored of the boxes on lots.

    0x02 box        State.boxes[box] = the owner key that signed it (lots_boxes' `attach`
                    and `calibrate` ask it who controls a box)
    0x06 regulator  State.set_regulators: each transaction is checked under the regulators
                    of its own log position (the bootstrap first, then each handover)
    0x03 block      the stored transactions sharing one 0x04, applied with the engine, then
                    ColdChains.after_transactions (legs opened and closed)
    0x01 batch      ColdChains.apply_readings with the readings the batch stored first (not
                    a duplicate sighting, not an equivocation: the ledger's readings), of
                    boxes that have an attachment window; a batch that changed the state
                    has its 0x04 right after it

The contract service follows the log this way at start (the State and ColdChains rebuilt by
replay) and, under the log's lock, before it appends anything of its own (what other workers
and this worker's other services appended since); `verify --replay` does the same from the
public log and the bodies (cloud/audit/replay.py), so both reach the same roots.

Readings are read only for the boxes that can have a window in the range: those with one
(ColdChains.attached) and those an `attach` in the range names; a ledger with no box on a
lot reads none.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from cloud.contracts import lots_boxes, lots_coldchain, tx
from cloud.contracts.engine import Applied, Engine, State
from cloud.contracts.lots_coldchain import BoxReading, ColdChains
from cloud.storage import contracts as stored
from cloud.storage.batches import MAX_LEAF
from cloud.storage.engine import Tx
from cloud.storage.store import StoredTx
from device import reading
from gateway import config_entry
from gateway.refusal import Refused

PAGE = 1000  # stored transactions, and stored readings, read per query


@dataclass(frozen=True)
class Position:
    """How far a State follows the log: `synced` entries (the next index to read), the last
    entry its latest root covers (`covers`: a 0x03, or a batch's 0x01; None before any) and
    that root's 0x04 entry (`root_index`)."""

    synced: int
    covers: int | None = None
    root_index: int | None = None


def changed(applied: Applied) -> bool:
    """Whether an Applied changed any record (a reading batch that did not needs no 0x04)."""
    return bool(applied.put or applied.deleted)


def apply_block(
    engine: Engine, state: State, chains: ColdChains, block: Sequence[tuple[tx.SignedTx, bytes]]
) -> list[Applied]:
    """Apply one block of (transaction, commitment salt) and what it does to the cold chains;
    return the engine's Applied of each transaction, then the cold chains'. The root is left
    for the caller to read. Raises the engine's ContractError at the first refusal."""
    applied = [engine.apply(state, signed, salt, root=False) for signed, salt in block]
    return [*applied, chains.after_transactions(state, applied, root=False)]


def follow_authority(state: State, entry: bytes) -> None:
    """Follow one registry (0x02) or configuration (0x06) entry: a box registration names
    the box's owner key; a "regulator" entry names the regulators from here on. Raises
    RegistryError or ConfigError for an entry that does not parse or verify."""
    if entry[0] == config_entry.ENTRY_CONFIG:
        if (regulators := config_entry.regulators_named(entry)) is not None:
            state.set_regulators(regulators)
    elif (box := lots_boxes.registered_box(entry)) is not None:
        state.boxes[box[0]] = box[1]


async def follow(
    db: Tx,
    engine: Engine,
    state: State,
    chains: ColdChains,
    at: Position,
    end: int,
    told: list[tuple[int, Applied]],
) -> Position:
    """Apply to `state` and `chains` what log entries at.synced .. end-1 hold, in log order,
    up to a page of transactions (whole blocks); return the position reached (synced is
    `end` once everything was applied). Append to `told` what each change was, by the log
    index of the entry that caused it (ContractService's listeners). A stored transaction
    the engine refuses means the store and the rules have parted: RuntimeError."""
    if at.synced >= end:
        return at
    rows, whole = await _blocks(db, at.synced - 1, end)
    stop = end if whole else rows[-1][-1].root_index + 1
    blocks = [[(_parsed(r), r) for r in block] for block in rows]
    authority = await stored.authority_entries(db, at.synced - 1, stop)
    wanted = chains.attached | _attached_by(s for block in blocks for s, _ in block)
    batches = _Batches(db, wanted, at.synced - 1, stop)
    position = Position(stop, at.covers, at.root_index)
    events = sorted(
        [(i, "authority", e) for i, e in authority]
        + [(b[0][1].log_index, "block", b) for b in blocks],
        key=lambda event: event[0],
    )
    for index, kind, item in events:
        position = await _batches_before(batches, index, state, chains, position, told)
        if kind == "authority":
            assert isinstance(item, bytes)
            follow_authority(state, item)
        else:
            assert isinstance(item, list)
            position = _block(engine, state, chains, item, position, told)
    return await _batches_before(batches, stop, state, chains, position, told)


async def _blocks(db: Tx, after: int, end: int) -> tuple[list[list[StoredTx]], bool]:
    """The stored transactions after `after` and before `end`, up to a page of them in whole
    blocks (a block: those sharing one 0x04; a longer block is read whole), and whether
    they are all of them."""
    limit = PAGE
    while True:
        rows = await stored.between(db, after, end, limit)
        blocks: list[list[StoredTx]] = []
        for row in rows:
            if blocks and blocks[-1][0].root_index == row.root_index:
                blocks[-1].append(row)
            else:
                blocks.append([row])
        if len(rows) < limit:
            return blocks, True
        if len(blocks) > 1:
            return blocks[:-1], False  # the last may go on past the page
        limit *= 2


def _parsed(row: StoredTx) -> tx.SignedTx:
    try:
        return tx.from_record(row.canonical, row.sig)
    except Refused as e:
        raise RuntimeError(f"stored transaction at {row.log_index} unreadable: {e}") from e


def _attached_by(signed: Iterable[tx.SignedTx]) -> set[bytes]:
    """The boxes that `attach` transactions name (their readings may count from then on)."""
    found = set()
    for each in signed:
        body = each.body
        if body.contract == "lots" and body.type == "attach" and isinstance(body.args, dict):
            box = body.args.get("box")
            if isinstance(box, str) and len(box) == 64:
                try:
                    found.add(bytes.fromhex(box))
                except ValueError:
                    continue  # the engine refuses it: nothing to read
    return found


def _block(
    engine: Engine,
    state: State,
    chains: ColdChains,
    block: list[tuple[tx.SignedTx, StoredTx]],
    at: Position,
    told: list[tuple[int, Applied]],
) -> Position:
    try:
        applied = apply_block(engine, state, chains, [(signed, row.salt) for signed, row in block])
    except Refused as e:
        first = block[0][1].log_index
        raise RuntimeError(f"stored transactions from {first} refused: {e}") from e
    last = block[-1][1]
    told.extend(zip([row.log_index for _, row in block] + [last.log_index], applied, strict=True))
    return Position(at.synced, last.log_index, last.root_index)


async def _batches_before(
    batches: _Batches,
    index: int,
    state: State,
    chains: ColdChains,
    at: Position,
    told: list[tuple[int, Applied]],
) -> Position:
    """Apply every batch before log index `index`."""
    while (batch := await batches.next_before(index)) is not None:
        where, readings = batch
        applied = chains.apply_readings(state, readings, root=False)
        if changed(applied):
            told.append((where, applied))
            at = Position(at.synced, where, where + 1)  # its 0x04 follows it
    return at


class _Batches:
    """The readings of `boxes` first stored by each batch after `after` and before `stop`,
    batch by batch in log order, read a page at a time."""

    def __init__(self, db: Tx, boxes: set[bytes], after: int, stop: int) -> None:
        self.db, self.boxes, self.stop = db, boxes, stop
        self.rows: list[tuple[int, int, bytes]] = []
        self.last = (after, MAX_LEAF)  # the last (log index, leaf) read: none of `after`
        self.done = not boxes

    async def _fill(self) -> None:
        if not self.done:
            page = await stored.first_readings(self.db, self.boxes, self.last, self.stop, PAGE)
            self.rows += page
            self.done = len(page) < PAGE
            if page:
                self.last = page[-1][:2]

    async def next_before(self, index: int) -> tuple[int, list[BoxReading]] | None:
        """The next batch's log index and readings if it is before `index`, else None."""
        if not self.rows:
            await self._fill()
        if not self.rows or self.rows[0][0] >= index:
            return None
        where = self.rows[0][0]
        while self.rows[-1][0] == where and not self.done:
            await self._fill()  # the batch may go on in the next page
        count = next((i for i, r in enumerate(self.rows) if r[0] != where), len(self.rows))
        taken, self.rows = self.rows[:count], self.rows[count:]
        return where, [lots_coldchain.box_reading(reading.decode(w)) for _, _, w in taken]


def first_stored(
    readings: Sequence[reading.Reading], sighted: Iterable[int], boxes: Collection[bytes]
) -> list[BoxReading]:
    """The readings of `boxes` a batch stored first, as apply_readings takes them: its
    leaves but the positions `sighted` (duplicate sightings and equivocations,
    cloud/storage/batches.py). Costs a set lookup per reading of a box not in `boxes`."""
    if not boxes:
        return []
    mine = [(i, r) for i, r in enumerate(readings) if r.key in boxes]
    if not mine:
        return []
    skip = set(sighted)
    return [lots_coldchain.box_reading(r) for i, r in mine if i not in skip]

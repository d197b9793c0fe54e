"""The contract engine (docs/contracts.md §1 and §2): applies one signed transaction to the state,
all or nothing, and says what changed. Pure: no storage, no HTTP, no clock.

    who   the signer's x-only key names an active participant (or a configured regulator)
                                                                      403 "participant"
    may   the write-matrix cell for (role, the column of this tx type; cloud/contracts/access)
                                                                      403 "access" / "role"
    state the contract's rule for this type, against the current state through an overlay
                                                    409 names the rule, 400 names the field

A rule sees a Context: the signer, the transaction's own time, id and commitment salt, read
access to the state, put/delete of records and notify(). Only when the rule returns are its
changes committed: records, the state tree (one update per transaction) and the replay
guards. A refusal raises a ContractError and leaves the State exactly as it was.

Records (§2) are canonical JSON (RFC 8785, gateway/jcs.py). A public record's tree value is
those bytes; a private record's is tagged_hash(PRIVATE_TAG, salt || canonical) with
salt = tagged_hash(SALT_TAG, tx salt || record key), the tx salt being the commitment salt of
the transaction that wrote this version of the record (cloud/contracts/entries.py). So
replayers, who fetch each body with its salt, recompute every leaf.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cloud.contracts import access
from cloud.contracts.entries import SALT_SIZE
from cloud.contracts.pack_index import Overlay, SerialIndex
from cloud.contracts.statetree import StateTree
from cloud.contracts.statetree_hash import grouped_key, record_key
from cloud.contracts.statetree_proof import Proof
from cloud.contracts.tx import SignedTx
from device import schnorr
from gateway.jcs import canonicalize
from gateway.refusal import Refused

PRIVATE_TAG: Final = b"PharmaSync/state/private/v1"
SALT_TAG: Final = b"PharmaSync/state/salt/v1"
# How far a transaction's own time may be from the server's clock on arrival (§1 "time").
# Checked by the service on arrival only (check_time), never on replay.
MAX_SKEW_MS: Final = 5 * 60 * 1000


class ContractError(Refused):
    """A transaction the engine refuses: `reason` names the check, `detail` what failed."""


class Invalid(ContractError):
    """400: an argument that is malformed or out of range; `reason` names the field
    ("args.quantity")."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail, 400)


class Forbidden(ContractError):
    """403: the signer may not do this. `reason` is "participant" (not admitted, suspended,
    rotated), "access" (the write-matrix cell, named in `detail`: "write:
    distributor × product = no") or "role" (a rule that narrows a cell to certain roles)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, 403)


class Conflict(ContractError):
    """409: the state refuses it; `reason` names the rule ("holder", "quantity",
    "recalled", "replayed")."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, 409)


@dataclass(frozen=True)
class RecordType:
    """One kind of record of one contract: its type byte in the record key (statetree_hash
    .record_key), a name for readers, and whether its tree leaf is the salted hash."""

    contract: str
    code: int
    name: str
    private: bool
    grouped: bool = False  # keyed by statetree_hash.grouped_key (first fields: GTIN, lot)

    def key(self, *fields: str) -> bytes:
        """Return the 32-byte tree key of the record of this type with these key fields.

        Remembered (a transaction reads and writes the same few keys, and every one names
        its signer's participant record), at most _KEYS_KEPT of them."""
        name = (self.contract, self.code, self.grouped, fields)
        found = _KEYS.get(name)
        if found is None:
            if len(_KEYS) >= _KEYS_KEPT:
                _KEYS.clear()
            derive = grouped_key if self.grouped else record_key
            found = _KEYS[name] = derive(self.contract, self.code, *fields)
        return found


_KEYS: dict[tuple[str, int, bool, tuple[str, ...]], bytes] = {}
_KEYS_KEPT: Final = 1 << 16


@dataclass(frozen=True)
class Record:
    """One record as stored: its type and key fields, canonical bytes and (private records
    only) the 32-byte salt of its leaf."""

    type: RecordType
    fields: tuple[str, ...]
    canonical: bytes
    salt: bytes | None

    @property
    def key(self) -> bytes:
        """The record's tree key."""
        return self.type.key(*self.fields)

    @property
    def value(self) -> dict[str, Any]:
        """A fresh copy of the record's JSON object."""
        value: dict[str, Any] = json.loads(self.canonical)
        return value

    @property
    def leaf(self) -> bytes:
        """The value the state tree holds: the canonical bytes, or the salted hash."""
        if self.salt is None:
            return self.canonical
        return schnorr.tagged_hash(PRIVATE_TAG, self.salt + self.canonical)


def record_salt(tx_salt: bytes, key: bytes) -> bytes:
    """Return the salt of a private record written by a transaction with commitment salt
    `tx_salt`: tagged_hash(SALT_TAG, tx salt || record key)."""
    return schnorr.tagged_hash(SALT_TAG, tx_salt + key)


@dataclass(frozen=True)
class Participant:
    """Who signed: a participant's stable id (the DID it was admitted with; records name
    participants by it, so a key rotation moves nothing), its current DID and its role
    (access.ROLES)."""

    id: str
    did: str
    role: str


@dataclass(frozen=True)
class Notification:
    """An event for one participant's feed, derived from an applied transaction."""

    did: str
    event: Mapping[str, Any]


class View(Protocol):
    """Read access to contract state (the committed State, or a rule's overlay)."""

    @property
    def regulators(self) -> frozenset[bytes]: ...

    def get(self, rtype: RecordType, *fields: str) -> dict[str, Any] | None: ...

    def record(self, rtype: RecordType, *fields: str) -> Record | None: ...


# Who signed, from the signer's did:key: raises Forbidden "participant" for a key that is no
# active participant (participants.identify).
Identify = Callable[[View, str], Participant]


@dataclass(frozen=True)
class Applied:
    """What one accepted transaction changed: records put (by key) and deleted (keys), the
    notifications, and the state tree's root and record count after it (None when the
    root was deferred to the end of a block: Engine.apply's `root`)."""

    tx_id: str
    put: Mapping[bytes, Record]
    deleted: frozenset[bytes]
    notifications: tuple[Notification, ...]
    root: bytes | None
    records: int | None
    # The transaction's own time (ms); None for what a reading batch or a block's cold
    # chains derived. What is derived beside the State from the changes alone (the stock
    # index's dispense rate: cloud/contracts/stock.py) dates them by it.
    time: int | None = None
    # The regulators (x-only keys) at the change's own log position: whoever derives
    # notifications beside the State (the stock index's shortage alerts) addresses them
    # by these, not by the regulators of a later entry it has applied since.
    regulators: frozenset[bytes] = frozenset()


def _regulator_keys(regulators: Iterable[bytes]) -> frozenset[bytes]:
    keys = frozenset(regulators)
    for key in keys:
        if type(key) is not bytes or len(key) != 32:
            raise ValueError(f"regulator key {key!r:.80}, want 32 bytes (x-only)")
    return keys


class State:
    """Every contract's records in memory, their state tree, the replay guards and the
    configured regulator keys (x-only, 32 bytes; the log's 0x06 entries give them).

    Leaf changes of applied transactions whose root was deferred wait in `pending` and
    enter the tree in one update when the root is next read (a block's root)."""

    def __init__(self, regulators: Iterable[bytes] = (), tree: StateTree | None = None) -> None:
        """Start empty, or over `tree` (a StateTree on a database's NodeStore) whose records
        the caller then loads into `records`. Raises ValueError for a regulator key that is
        not 32 bytes."""
        self._regulators = _regulator_keys(regulators)
        self.records: dict[bytes, Record] = {}
        self.tree = StateTree() if tree is None else tree
        self.nonces: set[tuple[bytes, str]] = set()
        self.tx_ids: set[str] = set()
        self.pending: dict[bytes, bytes | None] = {}
        # The registry's boxes (0x02 entries, op "box"): box x-only key -> its owner's x-only
        # key, fed by whoever applies the log (the service, a replay) in log order, before
        # the transactions after that entry. Not in the tree: the registry is its own log.
        self.boxes: dict[bytes, bytes] = {}
        # Which registration holds each serial of each GTIN (cloud/contracts/pack_index.py):
        # written by the packs rules through their Context's overlay, so rebuilt by replay.
        self.packs: SerialIndex | Overlay = SerialIndex()

    @property
    def regulators(self) -> frozenset[bytes]:
        """The x-only keys of the regulators."""
        return self._regulators

    def set_regulators(self, regulators: Iterable[bytes]) -> None:
        """The regulators from here on: whoever applies the log calls it at each 0x06
        "regulator" entry, in log order, so each transaction is checked under the regulators
        of its own log position (a handover never re-judges earlier transactions). Not in
        the tree: the configuration is its own part of the log. Raises ValueError as
        __init__."""
        self._regulators = _regulator_keys(regulators)

    @property
    def root(self) -> bytes:
        """The state tree's root hash, pending leaf changes applied first."""
        self.flush()
        return self.tree.root

    @property
    def count(self) -> int:
        """How many records the tree holds (what the 0x04 entry commits to)."""
        self.flush()
        return self.tree.records

    def flush(self) -> None:
        """Apply pending leaf changes to the tree in one update (one path per key, shared
        paths hashed once). If the tree's store fails (LookupError), the tree is unchanged
        and the changes stay pending."""
        if self.pending:
            self.tree.update(self.pending)
            self.pending = {}

    def prove(self, rtype: RecordType, *fields: str) -> tuple[bytes | None, Proof]:
        """Return the record's tree value (canonical bytes if public, the salted hash if
        private; None if absent) and the proof of it against `root`."""
        self.flush()
        key = rtype.key(*fields)
        return self.tree.get(key), self.tree.prove(key)

    def get(self, rtype: RecordType, *fields: str) -> dict[str, Any] | None:
        """Return a copy of the record's JSON object, or None if there is none."""
        record = self.records.get(rtype.key(*fields))
        return None if record is None else record.value

    def record(self, rtype: RecordType, *fields: str) -> Record | None:
        """Return the stored Record (with its salt), or None: what a proof reveals."""
        return self.records.get(rtype.key(*fields))


class Context:
    """What a rule sees and does for one transaction: the signer, the tx's own time (ms),
    id, commitment salt and args, reads through an overlay, and the changes it makes.
    Nothing reaches the State unless the rule returns."""

    def __init__(
        self, state: State, tx: SignedTx, tx_id: str, salt: bytes, signer: Participant | None
    ) -> None:
        self._state = state
        self.tx = tx
        self.signer = signer
        self.time = tx.body.time
        self.tx_id = tx_id
        self.salt = salt
        self.args: Mapping[str, Any] = tx.body.args
        self.changes: dict[bytes, Record | None] = {}
        self.notifications: list[Notification] = []
        # The serial index as this transaction sees it; its additions reach the State's
        # only if the rule returns (packs.py).
        self.packs = state.packs.overlay()

    @property
    def regulators(self) -> frozenset[bytes]:
        """The regulators' x-only keys."""
        return self._state.regulators

    def box_owner(self, box: bytes) -> bytes | None:
        """Return the owner key the registry names for box key `box`, or None if it is not
        a registered box (State.boxes)."""
        return self._state.boxes.get(box)

    @property
    def me(self) -> Participant:
        """The signer; raises Forbidden "participant" for a contract open to anyone."""
        if self.signer is None:
            raise Forbidden("participant", "this transaction needs an admitted participant")
        return self.signer

    def get(self, rtype: RecordType, *fields: str) -> dict[str, Any] | None:
        """Return a copy of the record as this transaction sees it, or None."""
        key = rtype.key(*fields)
        record = self.changes[key] if key in self.changes else self._state.records.get(key)
        return None if record is None else record.value

    def record(self, rtype: RecordType, *fields: str) -> Record | None:
        """Return the Record as this transaction sees it, or None."""
        key = rtype.key(*fields)
        return self.changes[key] if key in self.changes else self._state.records.get(key)

    def put(self, rtype: RecordType, fields: Sequence[str], value: Mapping[str, Any]) -> None:
        """Write a record (public or private by its type). Raises JcsError (400) for a value
        that is not canonical JSON (a float, a lone surrogate)."""
        canonical = canonicalize(value)
        key = rtype.key(*fields)
        salt = record_salt(self.salt, key) if rtype.private else None
        self.changes[key] = Record(rtype, tuple(fields), canonical, salt)

    def delete(self, rtype: RecordType, *fields: str) -> None:
        """Remove a record (nothing if it is absent)."""
        self.changes[rtype.key(*fields)] = None

    def notify(self, did: str, event: Mapping[str, Any]) -> None:
        """Queue an event for `did`'s feed; delivered only if the transaction is applied."""
        self.notifications.append(Notification(did, dict(event)))


@dataclass(frozen=True)
class Contract:
    """A named contract and its rules by transaction type. `open` types may be signed by
    anyone with a key (signer None in the Context); all others need a participant. With
    `matrix` a participant's write is checked against the access matrices (access.TX_COLUMNS
    maps each type to its column); a contract whose access is decided otherwise (a
    patient's consent) sets it False and decides in its rules."""

    name: str
    rules: Mapping[str, Callable[[Context], None]]
    open: frozenset[str] = field(default_factory=frozenset)
    matrix: bool = True


class Engine:
    """Applies transactions to a State with a fixed set of contracts and a way to know who
    signed (participants.identify)."""

    def __init__(self, contracts: Iterable[Contract], identify: Identify) -> None:
        self.contracts = {c.name: c for c in contracts}
        self.identify = identify

    def apply(self, state: State, tx: SignedTx, salt: bytes, *, root: bool = True) -> Applied:
        """Check `tx` (its signature already verified: a SignedTx) against `state` and apply
        it with commitment salt `salt` (32 bytes). Raises ContractError (Invalid, Forbidden,
        Conflict), leaving `state` unchanged; returns what changed otherwise. With root=False
        the tree update waits for the next read of state.root (the end of a block: a group
        commit hashes the block's shared paths once); the records change at once."""
        if type(salt) is not bytes or len(salt) != SALT_SIZE:
            raise ValueError(f"salt {salt!r:.80}, want {SALT_SIZE} bytes")
        body = tx.body
        contract = self.contracts.get(body.contract)
        if contract is None:
            want = sorted(self.contracts)
            raise Invalid("tx.contract", f"got {body.contract!r}, want one of {want}")
        rule = contract.rules.get(body.type)
        if rule is None:
            raise Invalid("tx.type", f"got {body.type!r}, want one of {sorted(contract.rules)}")
        guard = (body.signer_xonly, body.nonce)
        if guard in state.nonces:
            raise Conflict("replayed", f"nonce {body.nonce} already used by this signer")
        tx_id = tx.id
        if tx_id in state.tx_ids:
            raise Conflict("replayed", f"transaction {tx_id} already applied")
        signer: Participant | None
        try:
            signer = self.identify(state, body.signer)
        except Forbidden:
            if body.type not in contract.open:
                raise
            signer = None
        if signer is not None and contract.matrix:
            access.authorize(signer.role, body.contract, body.type, Forbidden)
        ctx = Context(state, tx, tx_id, salt, signer)
        rule(ctx)
        return _commit(state, ctx, guard, root)


def _commit(state: State, ctx: Context, guard: tuple[bytes, str], root: bool) -> Applied:
    """Apply a rule's overlay to the State: records, tree, guards. Only called on success."""
    state.nonces.add(guard)
    state.tx_ids.add(ctx.tx_id)
    ctx.packs.commit()
    return commit_changes(
        state, ctx.tx_id, ctx.changes, ctx.notifications, root=root, time=ctx.time
    )


def commit_changes(
    state: State,
    tx_id: str,
    changes: Mapping[bytes, Record | None],
    notifications: Iterable[Notification],
    *,
    root: bool = True,
    time: int | None = None,
) -> Applied:
    """Apply record changes (a record, or None to delete) to the State and its tree, and say
    what changed: an accepted transaction's overlay (`time` its own time), or what a reading
    batch derived (cloud/contracts/lots_coldchain.py, whose `tx_id` is empty). root as in
    Engine.apply."""
    put = {k: r for k, r in changes.items() if r is not None}
    deleted = frozenset(k for k, r in changes.items() if r is None and k in state.records)
    state.pending.update({k: (None if r is None else r.leaf) for k, r in changes.items()})
    for key in deleted:
        del state.records[key]
    state.records.update(put)
    notes = tuple(notifications)
    regulators = state.regulators
    if not root:
        return Applied(tx_id, put, deleted, notes, None, None, time, regulators)
    return Applied(tx_id, put, deleted, notes, state.root, state.count, time, regulators)


def check_time(tx: SignedTx, now_ms: int, skew_ms: int = MAX_SKEW_MS) -> None:
    """Require the tx's time within `skew_ms` of the server's clock `now_ms` (on arrival
    only: replay never calls this). Raises Invalid "tx.time"."""
    if abs(tx.body.time - now_ms) > skew_ms:
        raise Invalid(
            "tx.time",
            f"got {tx.body.time}, want within {skew_ms} ms of the server's {now_ms}",
        )


class ReplayError(Exception):
    """A logged transaction that the engine refuses on replay: `index` is its position in
    the sequence, `error` the refusal. The log and the state have parted there."""

    def __init__(self, index: int, tx_id: str, error: ContractError) -> None:
        super().__init__(f"transaction {index} ({tx_id}) refused on replay: {error}")
        self.index, self.tx_id, self.error = index, tx_id, error


Block = Sequence[tuple[SignedTx, bytes]]


def replay_blocks(
    engine: Engine,
    blocks: Iterable[Block],
    regulators: Iterable[bytes],
    state: State | None = None,
) -> list[bytes]:
    """Apply blocks of (transaction, commitment salt) pairs in log order to `state` (a
    fresh State with `regulators` if None), the same `apply` as live; return the root
    after each block (what its 0x04 entry must hold). Raises ReplayError at the first
    transaction refused, its index counted over all blocks."""
    state = State(regulators) if state is None else state
    roots = []
    index = 0
    for block in blocks:
        for tx, salt in block:
            try:
                engine.apply(state, tx, salt, root=False)
            except ContractError as e:
                raise ReplayError(index, tx.id, e) from e
            index += 1
        roots.append(state.root)
    return roots


def replay(
    engine: Engine,
    transactions: Iterable[tuple[SignedTx, bytes]],
    regulators: Iterable[bytes],
    state: State | None = None,
) -> list[bytes]:
    """Replay each transaction as a block of its own: the root after each (replay_blocks)."""
    return replay_blocks(engine, ([item] for item in transactions), regulators, state)

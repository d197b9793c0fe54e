"""The state tree: one sparse Merkle tree over every contract's records (DESIGN.md, "State root").

Keys are 32 bytes (statetree_hash.record_key), values are bytes (a record's canonical bytes
or a salted hash of a private one). The tree is binary and has 2**256 leaf slots, but only
non-empty subtrees are materialised: a subtree holding no record hashes to EMPTY, one holding
a single record hashes to that record's leaf (the leaf sits at its key's shortest unique
prefix, as in Diem's Jellyfish Merkle tree), and one holding two or more is an internal node
over its two halves. So the root depends only on the set of (key, value) pairs, never on the
order they arrived in, and an update hashes one path of about log2(n) nodes, not 256.

Nodes live in a NodeStore (statetree_store); `update` applies a batch of changes, writes
only the nodes it changed and returns them (NodeChanges), so a database store persists just
those in the same transaction as the log entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cloud.contracts.statetree_hash import (
    EMPTY,
    bit,
    check_hash,
    leaf_hash,
    node_hash,
    value_hash,
)
from cloud.contracts.statetree_proof import Proof, ProofLeaf
from cloud.contracts.statetree_store import (
    LEFT,
    RIGHT,
    ROOT,
    Leaf,
    MemoryNodeStore,
    NodeChanges,
    NodeStore,
    Position,
    Stored,
    position,
    read,
    stored_hash,
)

# What a subtree became after an update, as its parent sees it:
#   None   empty;
#   Leaf   exactly one record, not yet placed: it floats up to the highest position where it
#          is alone, and its parent (or the root) places it;
#   bytes  the hash of a placed subtree of two or more records (an internal node), or of an
#          untouched subtree whose kind is looked up only if its sibling became empty.
_Subtree = Leaf | bytes | None

Changes = Mapping[bytes, bytes | None]


class StateTree:
    """A sparse Merkle tree over 32-byte keys, its nodes in a NodeStore.

    Requires `records` to be the number of records already in `store` (0 for a new store):
    the tree keeps the count that the state-root entry commits to. Raises ValueError if
    records < 0.
    """

    def __init__(self, store: NodeStore | None = None, records: int = 0) -> None:
        if records < 0:
            raise ValueError(f"records {records}, want >= 0")
        self.store: NodeStore = MemoryNodeStore() if store is None else store
        top = read(self.store, ROOT)
        self._root = EMPTY if top is None else stored_hash(top)
        self.records = records

    @property
    def root(self) -> bytes:
        """The 32-byte root hash; EMPTY (32 zero bytes) for an empty tree."""
        return self._root

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under `key`, or None. Raises ValueError unless 32 bytes."""
        check_hash("key", key)
        node, _ = self._walk(key)
        return node.value if isinstance(node, Leaf) and node.key == key else None

    def put(self, key: bytes, value: bytes) -> NodeChanges:
        """Insert or replace one record; see `update`."""
        return self.update({key: value})

    def delete(self, key: bytes) -> NodeChanges:
        """Remove one record (nothing changes if it is absent); see `update`."""
        return self.update({key: None})

    def update(self, changes: Changes) -> NodeChanges:
        """Apply many changes at once (a value to put, None to delete) and store the result.

        Each node on the union of the changed paths is hashed once, so a batch of k changes
        costs about k·log2(n/k) + k hashes. Deleting an absent key is a no-op. Requires
        32-byte keys and bytes values; raises ValueError (and changes nothing) otherwise, and
        LookupError (changing nothing) if the store lacks a node its parent names. Returns
        the nodes written and the positions emptied, already applied to the store.
        """
        for key, value in changes.items():
            check_hash("key", key)
            if value is not None and not isinstance(value, bytes):
                raise ValueError(f"value of {key.hex()} is {type(value).__name__}, want bytes")
        batch = _Batch(self.store)
        items: _Items = sorted(changes.items(), key=lambda item: item[0])
        if not items:
            return NodeChanges({}, frozenset(), 0)
        top = read(self.store, ROOT)
        if top is not None:
            batch.old[ROOT] = top
        result = batch.subtree(0, ROOT, top, items, 0, len(items))
        if isinstance(result, Leaf):
            batch.new[ROOT] = result
            result = result.hash
        applied = batch.changes()
        self.store.apply(applied)
        self._root = EMPTY if result is None else result
        self.records += batch.records
        return applied

    def prove(self, key: bytes) -> Proof:
        """Return the proof that `key` holds its value, or is absent. Raises ValueError unless
        the key is 32 bytes."""
        check_hash("key", key)
        node, siblings = self._walk(key)
        leaf = None if node is None else ProofLeaf(node.key, node.value_digest)
        return Proof(leaf, tuple(siblings))

    def _walk(self, key: bytes) -> tuple[Leaf | None, list[bytes]]:
        """Follow key's path from the root to a leaf or an empty slot; return it and the
        siblings passed, root side first."""
        siblings: list[bytes] = []
        levels = self.store.levels
        node: Stored | None = read(self.store, ROOT)
        depth = 0
        while node.__class__ is bytes:
            if bit(key, depth):
                child, sibling = node[RIGHT], node[LEFT]  # type: ignore[index]
            else:
                child, sibling = node[LEFT], node[RIGHT]  # type: ignore[index]
            siblings.append(sibling)
            depth += 1
            if child == EMPTY:
                return None, siblings
            try:
                node = levels[depth][position(key, depth)[1]]
            except KeyError:
                node = None
            if node is None:
                raise LookupError(f"store has no node at depth {depth} for {key.hex()}")
        return node, siblings  # type: ignore[return-value]


# A change inside an update: a value to put, None to delete, or (internally) a leaf pushed
# down from above when a new record lands next to it, so it is not hashed again.
_Change = bytes | Leaf | None
_Items = Sequence[tuple[bytes, _Change]]


class _Batch:
    """One update's working state: nodes read (old), nodes placed (new), hashes counted.

    Recursion goes one or two frames per level of the tree, so even two keys that share 255
    bits stay well inside Python's default recursion limit. The code on the path of every
    change (_internal, _join, _split, statetree_store.position) is written for speed: an
    update costs a few µs per level, and it runs once per block of transactions
    (bench/statetree.py, bench/lots.py).
    """

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self._levels = store.levels
        self.old: dict[Position, Stored] = {}
        self.new: dict[Position, Stored] = {}
        self.hashes = 0
        self.records = 0  # records added minus records deleted

    def changes(self) -> NodeChanges:
        """Return the nodes that differ from the store and the positions it must empty."""
        old = self.old
        written = {}
        for at, node in self.new.items():
            # Stored nodes compare equal exactly when their hashes do: an internal node's
            # bytes end with its hash and begin with what it hashes, and a Leaf compares by
            # hash; None (not read) and a leaf never equal a bytes.
            if old.get(at) != node:
                written[at] = node
        removed = frozenset(old.keys() - self.new.keys())
        return NodeChanges(written, removed, self.hashes)

    def subtree(
        self, depth: int, here: Position, current: Stored | None, items: _Items, lo: int, hi: int
    ) -> _Subtree:
        """Apply items[lo:hi] (sorted, non-empty, all under position `here` at `depth`) to
        the subtree whose top node, read from the store, is `current`; return what it
        became."""
        if current.__class__ is bytes:
            return self._internal(depth, here, current, items, lo, hi)  # type: ignore[arg-type]
        if current is not None:
            return self._leaf(depth, here, current, items, lo, hi)  # type: ignore[arg-type]
        return self._empty(depth, items[lo:hi], here)

    def _internal(
        self, depth: int, here: Position, node: bytes, items: _Items, lo: int, hi: int
    ) -> _Subtree:
        """Descend into the sides of an internal node (as stored: left ‖ right ‖ hash) that
        have changes; an untouched side stays a hash."""
        mid = _split(items, lo, hi, depth)
        down = depth + 1
        left: _Subtree
        right: _Subtree
        node_left = node[LEFT]
        node_right = node[RIGHT]
        if lo == mid:
            left = None if node_left == EMPTY else node_left
        else:
            at = position(items[lo][0], down)
            current = None if node_left == EMPTY else self._read(at)
            left = self.subtree(down, at, current, items, lo, mid)
        if mid == hi:
            right = None if node_right == EMPTY else node_right
        else:
            at = position(items[mid][0], down)
            current = None if node_right == EMPTY else self._read(at)
            right = self.subtree(down, at, current, items, mid, hi)
        return self._join(here, left, right)

    def _leaf(
        self, depth: int, here: Position, leaf: Leaf, items: _Items, lo: int, hi: int
    ) -> _Subtree:
        """Apply changes to a subtree holding the single record `leaf`: every other key is
        absent here, so deleting one is a no-op and putting one makes a new neighbour."""
        current: Leaf | None = leaf
        merged: list[tuple[bytes, _Change]] = []
        for key, value in items[lo:hi]:
            if key != leaf.key:
                merged.append((key, value))
            elif value is None:
                current = None
                self.records -= 1
            elif isinstance(value, bytes) and value != leaf.value:  # never a Leaf here
                current = self._make_leaf(key, value)
        if current is not None:
            merged.append((current.key, current))
            merged.sort(key=lambda item: item[0])
        return self._empty(depth, merged, here)

    def _empty(self, depth: int, items: _Items, here: Position | None = None) -> _Subtree:
        """Build the subtree of `items` (sorted) at an empty position (`here`, computed if
        None); deletes are no-ops."""
        puts = [(key, value) for key, value in items if value is not None]
        return self._build(depth, puts, here) if puts else None

    def _build(self, depth: int, puts: _Items, here: Position | None) -> _Subtree:
        """_empty of a non-empty list of puts (values or leaves, no deletes)."""
        if len(puts) == 1:
            key, value = puts[0]
            if value.__class__ is Leaf:
                return value  # type: ignore[return-value]
            self.records += 1
            return self._make_leaf(key, value)  # type: ignore[arg-type]
        mid = _split(puts, 0, len(puts), depth)
        left = self._build(depth + 1, puts[:mid], None) if mid else None
        right = self._build(depth + 1, puts[mid:], None) if mid < len(puts) else None
        return self._join(position(puts[0][0], depth) if here is None else here, left, right)

    def _join(self, here: Position, left: _Subtree, right: _Subtree) -> _Subtree:
        """Combine two sides at `here`: empty, a lone leaf floating up (the collapse rule), or
        an internal node placed at `here` with its leaf children placed below it."""
        if left is None:
            if right is None:
                return None
            if right.__class__ is bytes:
                right = self._resolve(_child_position(here, 1), right)  # type: ignore[arg-type]
            if right.__class__ is not bytes:
                return right  # a lone leaf floats up
            left_hash = EMPTY
        elif left.__class__ is bytes:
            left_hash = left  # type: ignore[assignment]
        else:
            if right is None:
                return left  # a lone leaf floats up
            self.new[_child_position(here, 0)] = left  # type: ignore[assignment]
            left_hash = left.hash  # type: ignore[union-attr]
        if right is None:
            if left.__class__ is bytes:
                left = self._resolve(_child_position(here, 0), left)  # type: ignore[arg-type]
                if left.__class__ is not bytes:
                    return left
            right_hash = EMPTY
        elif right.__class__ is bytes:
            right_hash = right  # type: ignore[assignment]
        else:
            self.new[_child_position(here, 1)] = right  # type: ignore[assignment]
            right_hash = right.hash  # type: ignore[union-attr]
        self.hashes += 1
        digest = node_hash(left_hash, right_hash)
        self.new[here] = left_hash + right_hash + digest  # as a store keeps it
        return digest

    def _resolve(self, at: Position, subtree: bytes) -> _Subtree:
        """A side whose sibling became empty: if it is a lone stored leaf, it floats up (read
        here, so its old position is emptied); an internal node stays where it is."""
        if at in self.new:  # an internal node this update placed: two or more records
            return subtree
        node = read(self.store, at)
        if node.__class__ is not Leaf:
            return subtree  # stays put: not read into `old`, so it is not removed
        self.old[at] = node  # type: ignore[assignment]
        return node  # type: ignore[return-value]

    def _read(self, at: Position) -> Stored:
        """Return the stored node at `at` and remember it; raise LookupError if it is missing
        (a store that lost a node its parent names)."""
        try:
            node = self._levels[at[0]][at[1]]
        except KeyError:
            node = None
        if node is None:
            raise LookupError(f"store has no node at depth {at.depth} ({at.prefix.hex()})")
        self.old[at] = node
        return node

    def _make_leaf(self, key: bytes, value: bytes) -> Leaf:
        """Return the leaf of a new or changed record (one leaf hash)."""
        digest = value_hash(value)
        self.hashes += 1
        return Leaf(key, value, digest, leaf_hash(key, digest))


def _split(items: _Items, lo: int, hi: int, depth: int) -> int:
    """Return the first index in items[lo:hi] (sorted) whose key has bit `depth` set."""
    byte, mask = depth >> 3, 0x80 >> (depth & 7)
    while lo < hi:
        mid = (lo + hi) >> 1
        if items[mid][0][byte] & mask:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _child_position(here: Position, side: int) -> Position:
    """Return the position of the left (0) or right (1) child of `here`."""
    size, spare = divmod(here.depth, 8)
    if spare == 0:
        return Position(here.depth + 1, here.prefix + bytes((side << 7,)))
    last = here.prefix[size] | (side << (7 - spare))
    return Position(here.depth + 1, here.prefix[:size] + bytes((last,)))

"""The log follower's state file: what it last verified, and the keys it pinned.

One JSON document per followed log, written atomically (a temporary file in the same
directory, fsync, rename over the old one, fsync of the directory), so a crash leaves the
old state or the new one, never half of either:

    {
      "version": 1,
      "url": "https://ledger.example",            where it was last read from (informational)
      "log_vkey": "<name>+<hex key ID>+<base64>", the pinned log key
      "log_vkey_source": "given" | "first use",   --log-vkey, or trusted on first use
      "origin": "ledger.example/log",             checkpoint origin, pinned at first success
      "size": 1234,                               the last verified checkpoint's tree size,
      "root": "<hex>",                            its root,
      "checkpoint": "<signed note>",              and the note itself (evidence for alarms)
      "compact_range": ["<hex>", ...],            perfect subtrees of entries [0, size)
      "gateways": {"<key hex>": {"seq": 7, "hash": "<hex>"}},  each gateway's last header
      "events": {"<key hex>": 12},                each gateway's last event seq (absent in
                                                  files from before gateway events: none)
      "owners": ["<key hex>", ...]                the owner set after the last configuration
                                                  entry (0x06; absent or empty: none yet)
      "ack_keys": [["<site>", "<key hex>"], ...]  keys authorised to acknowledge alarms of
                                                  a site (0x06 ack-key ops; absent: none)
      "regulators": ["<key hex>", ...]            the contracts' regulators (0x06 regulator
                                                  op; absent: none yet)
      "grants": [["<key hex>", "<contract>"], ...] replay grants (0x06 grant ops; absent: none)
    }

Loading re-checks that the compact range folds to the stored root, so a damaged or
hand-edited file is refused instead of quietly trusted.

With --readings, the follower also keeps `SeenReadings` beside it (<state>.readings.sqlite):
a digest of every reading (box, seq) it verified and where it was first carried, so it
tells a reading carried again by another batch (a duplicate, normal: boxes travel between
gateways) from other signed bytes under the same (box, seq) (an equivocation: the box's
key may be cloned) across polls (docs/protocol.md, "Exactly once").
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cloud.log.compact import CompactRange, CompactRangeError
from device.keyfile import fsync_dir
from gateway import batch, jsonbound
from gateway.note import NoteError, Verifier
from gateway.rfc6962 import EMPTY_ROOT

STATE_VERSION: Final = 1
SOURCE_GIVEN: Final = "given"  # the key came from --log-vkey
SOURCE_FIRST_USE: Final = "first use"  # the key was read from /v1/log/vkey and pinned


MAX_STATE_BYTES: Final = 1024 * 1024


class StateError(ValueError):
    """A state file that cannot be read as a follower state; str() says what is wrong."""


GatewayHead = batch.ChainHead  # the last batch of one gateway seen in the log


@dataclass(frozen=True)
class FollowState:
    """Everything the follower trusts between polls. Validates the log key string and that
    the compact range covers `size` entries and folds to `root`; raises StateError otherwise."""

    url: str
    log_vkey: str
    log_vkey_source: str
    origin: str | None = None
    size: int = 0
    root: bytes = EMPTY_ROOT
    checkpoint: str = ""
    compact_range: tuple[bytes, ...] = ()
    gateways: Mapping[bytes, GatewayHead] = field(default_factory=dict)
    events: Mapping[bytes, int] = field(default_factory=dict)  # gateway -> last event seq
    owners: frozenset[bytes] = frozenset()  # after the last configuration entry (0x06)
    ack_keys: frozenset[tuple[str, bytes]] = frozenset()  # (site, key), config_entry.AckKeys
    regulators: frozenset[bytes] = frozenset()  # the contracts' regulators (0x06)
    grants: frozenset[tuple[bytes, str]] = frozenset()  # (key, contract), config_entry.Grants

    def __post_init__(self) -> None:
        try:
            Verifier.parse(self.log_vkey)
        except NoteError as e:
            raise StateError(f"log_vkey: {e}") from None
        try:
            computed = self.frontier().root()
        except CompactRangeError as e:
            raise StateError(f"compact_range: {e}") from None
        if computed != self.root:
            raise StateError(
                f"compact_range folds to {computed.hex()}, want the stored root {self.root.hex()}"
            )

    def frontier(self) -> CompactRange:
        """Return a fresh CompactRange of the verified entries [0, size)."""
        return CompactRange(self.size, self.compact_range)

    def to_json(self) -> dict[str, Any]:
        """Return the state as the JSON document described above."""
        return {
            "version": STATE_VERSION,
            "url": self.url,
            "log_vkey": self.log_vkey,
            "log_vkey_source": self.log_vkey_source,
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "checkpoint": self.checkpoint,
            "compact_range": [h.hex() for h in self.compact_range],
            "gateways": {
                key.hex(): {"seq": head.seq, "hash": head.hash.hex()}
                for key, head in sorted(self.gateways.items())
            },
            "events": {key.hex(): seq for key, seq in sorted(self.events.items())},
            "owners": sorted(key.hex() for key in self.owners),
            "ack_keys": sorted([site, key.hex()] for site, key in self.ack_keys),
            "regulators": sorted(key.hex() for key in self.regulators),
            "grants": sorted([key.hex(), contract] for key, contract in self.grants),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FollowState:
        """Read the JSON document. Raises StateError naming the first bad field."""
        try:
            if doc["version"] != STATE_VERSION:
                raise StateError(f"version: got {doc['version']!r}, want {STATE_VERSION}")
            return cls(
                url=str(doc["url"]),
                log_vkey=str(doc["log_vkey"]),
                log_vkey_source=str(doc["log_vkey_source"]),
                origin=None if doc["origin"] is None else str(doc["origin"]),
                size=int(doc["size"]),
                root=bytes.fromhex(doc["root"]),
                checkpoint=str(doc["checkpoint"]),
                compact_range=tuple(bytes.fromhex(h) for h in doc["compact_range"]),
                gateways={
                    bytes.fromhex(key): GatewayHead(int(head["seq"]), bytes.fromhex(head["hash"]))
                    for key, head in doc["gateways"].items()
                },
                events={bytes.fromhex(key): int(seq) for key, seq in doc.get("events", {}).items()},
                owners=frozenset(bytes.fromhex(key) for key in doc.get("owners", [])),
                ack_keys=frozenset(
                    (str(site), bytes.fromhex(key)) for site, key in doc.get("ack_keys", [])
                ),
                regulators=frozenset(bytes.fromhex(key) for key in doc.get("regulators", [])),
                grants=frozenset(
                    (bytes.fromhex(key), str(contract)) for key, contract in doc.get("grants", [])
                ),
            )
        except StateError:
            raise
        except KeyError as e:
            raise StateError(f"field {e.args[0]!r}: got nothing, want a value") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise StateError(f"malformed field: {e}") from None


def default_state_path(url: str) -> Path:
    """Return $XDG_STATE_HOME (default ~/.local/state)/pharmasync/verify-<hash>.json for `url`.

    Named after a hash of the log's URL, not of its checkpoint origin: the origin is only
    known from a checkpoint, and a server could pick a new origin to be followed afresh.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path(base) / "pharmasync" / f"verify-{digest}.json"


def load_state(path: Path) -> FollowState | None:
    """Return the state stored at `path`, or None if there is no such file.

    Raises StateError if the file is not a follower state, OSError if it cannot be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:  # a state is a few KiB: a checkpoint note and at most 64 hashes
        doc = jsonbound.loads(data, max_bytes=MAX_STATE_BYTES, what=str(path))
    except jsonbound.JsonError as e:
        raise StateError(e.detail) from None
    if not isinstance(doc, dict):
        raise StateError(f"{path}: got {type(doc).__name__}, want a JSON object")
    try:
        return FollowState.from_json(doc)
    except StateError as e:
        raise StateError(f"{path}: {e}") from None


def save_state(path: Path, state: FollowState) -> None:
    """Write `state` to `path` atomically, creating its directory. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state.to_json(), indent=2).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must survive a power cut: sync the directory entry too (POSIX).
    fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class Equivocation:
    """Two leaves of the log carrying different signed bytes for one reading (box, seq):
    `first` and `again` are (log entry, leaf)."""

    box: bytes
    seq: int
    first: tuple[int, int]
    again: tuple[int, int]


class SeenReadings:
    """The readings a follower verified: (box, seq) -> a digest of the first bytes seen and
    where (log entry, leaf). Changes become durable only by commit(), which the follower
    calls just before saving its state, so an alarm leaves both as they were. (A crash
    between the two leaves this file ahead; re-seeing a leaf at the same place is then
    not a duplicate.)"""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS seen (box BLOB NOT NULL, seq INTEGER NOT NULL, "
        "digest BLOB NOT NULL, entry INTEGER NOT NULL, leaf INTEGER NOT NULL, "
        "PRIMARY KEY (box, seq)) WITHOUT ROWID"
    )

    def __init__(self, path: Path, *, fresh: bool) -> None:
        """Open (create) the file at `path`; `fresh` empties it (the follower starts from
        entry 0). Raises StateError (or OSError) if it cannot be opened."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path)
            self.db.execute(self.SCHEMA)
            if fresh:
                self.db.execute("DELETE FROM seen")
            self.db.commit()
        except sqlite3.Error as e:
            raise StateError(f"{path}: {e}") from None

    @staticmethod
    def path_for(state_path: Path) -> Path:
        """Where the readings of the follower whose state is at `state_path` are kept."""
        return state_path.with_suffix(".readings.sqlite")

    def record(
        self, entry: int, leaf: int, box: bytes, seq: int, wire: bytes
    ) -> Equivocation | bool:
        """Note that leaf `leaf` of log entry `entry` carries `wire` as reading (box, seq).
        Return False for a reading first seen here, True for a duplicate (the same bytes
        seen before at another place), or the Equivocation."""
        digest = hashlib.sha256(wire).digest()[:16]
        added = self.db.execute(
            "INSERT OR IGNORE INTO seen (box, seq, digest, entry, leaf) VALUES (?, ?, ?, ?, ?)",
            (box, seq, digest, entry, leaf),
        )
        if added.rowcount:
            return False
        first_digest, first_entry, first_leaf = self.db.execute(
            "SELECT digest, entry, leaf FROM seen WHERE box = ? AND seq = ?", (box, seq)
        ).fetchone()
        if (first_entry, first_leaf) == (entry, leaf):
            return False  # seen by a poll whose state was not saved: not a second carrier
        if first_digest == digest:
            return True
        return Equivocation(box, seq, (first_entry, first_leaf), (entry, leaf))

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        """Close, dropping what was not committed."""
        self.db.rollback()
        self.db.close()

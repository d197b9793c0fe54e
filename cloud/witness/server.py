"""A witness: it cosigns a log's checkpoints only while the log stays append-only
(c2sp.org/tlog-witness, cosignatures of c2sp.org/tlog-cosignature).

    POST /add-checkpoint   old <size>\\n  [<base64 proof hash>\\n ...]  \\n  <signed checkpoint>

Checks run in the spec's order; each has its answer:

    400  malformed body or checkpoint, or old size larger than the checkpoint's size
    404  the checkpoint's origin is not a log this witness is configured for
    403  no signature of that log's keys verifies, or one of them fails
    409  old size is not the size last cosigned: body "<that size>\\n", text/x.tlog.size
    422  the consistency proof from the last cosigned tree does not verify
    409  same size as last cosigned but another root (plain text): the log forked
    200  one cosignature/v1 line per witness key, "— <name> <base64>\\n"

A log that shrinks (a rollback or rewrite) never gets a cosignature: with old size = the
last size it breaks "old <= size" (400), with any other old size it gets 409.

State: per origin, the size and root of the last checkpoint cosigned (no entry means size 0).
Comparing the old size and recording the new checkpoint happen in ONE SQLite write
transaction (BEGIN IMMEDIATE: requests serialise across threads and processes, so the
spec's "rolling back K leaves" race cannot happen), committed with synchronous=FULL before
the cosignature is returned. A log-signed checkpoint refused with 422 or the fork 409 is
kept in an evidence table: the spec allows logging it, "as it might be proof of log
misbehavior".

The data directory:

    witness.key      the Ed25519 key, a signed-note PRIVATE+KEY+ string (mode 0600, made on
                     the first run); its vkey is what log operators configure
    witness.sqlite   the state. Losing it would let the witness cosign a fork of a log it
                     already witnessed: retire the key with it, never restart on a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from aiohttp import web

from cloud import startup
from cloud.httplog import server_logger
from cloud.keys import write_new_key
from cloud.witness.protocol import (
    ADD_CHECKPOINT_PATH,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    MalformedRequest,
    WitnessError,
)
from device import datalock
from device.cliutil import examples
from device.keyfile import fsync_dir
from gateway.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CosignatureSigner,
)
from gateway.merkle import ProofError, verify_consistency
from gateway.note import (
    AmbiguousVerifierError,
    InvalidSignatureError,
    KeyFormatError,
    NoteError,
    UnverifiedNoteError,
    Verifier,
    open_note,
    parse_note,
)
from gateway.rfc6962 import EMPTY_ROOT, HASH_SIZE

log = logging.getLogger("pharmasync.witness")

MAX_BODY_BYTES: Final = 128 * 1024  # as the Go witness (litewitness); aiohttp answers 413
# Sizes are SQLite INTEGERs, as they are int64 in golang.org/x/mod/sumdb/tlog.
MAX_STORED_SIZE: Final = 2**63 - 1
KEY_FILE: Final = "witness.key"
STATE_FILE: Final = "witness.sqlite"
DEFAULT_PORT: Final = 7380


# --- errors: each carries the HTTP status the handler answers with -----------------------


class UnknownLog(WitnessError):
    """A checkpoint whose origin is no log this witness is configured for."""

    status = 404
    log_level = logging.INFO


class UntrustedCheckpoint(WitnessError):
    """A checkpoint without a valid signature of its log's keys."""

    status = 403
    log_level = logging.WARNING


class OldSizeConflict(WitnessError):
    """An old size other than the size last cosigned (`.latest`): the client retries from it."""

    status = 409
    log_level = logging.INFO

    def __init__(self, got: int, latest: int) -> None:
        self.got, self.latest = got, latest
        super().__init__(f"old size: got {got}, want {latest} (the size last cosigned)")


class InconsistentProof(WitnessError):
    """A consistency proof that does not lead from the last cosigned tree to the new one."""

    status = 422
    log_level = logging.WARNING
    evidence = True


class ForkedRoot(WitnessError):
    """The size last cosigned with another root hash: a split view (spec: 409)."""

    status = 409
    evidence = True

    def __init__(self, size: int, got: bytes, cosigned: bytes) -> None:
        self.size, self.got, self.cosigned = size, got, cosigned
        super().__init__(
            f"root hash at size {size}: got {got.hex()}, want {cosigned.hex()} (cosigned)"
        )


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    """What a witness last cosigned for one log: tree size and root hash."""

    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_STORED_SIZE or len(self.root_hash) != HASH_SIZE:
            raise ValueError(
                f"cosigned tree: got size {self.size}, {len(self.root_hash)}-byte root"
            )


NEVER_COSIGNED: Final = Cosigned(0, EMPTY_ROOT)  # spec: "or zero if it never cosigned"


class StateUpdate:
    """One log's state inside a write transaction: `last`, then `record()` the new state."""

    def __init__(self, last: Cosigned) -> None:
        self.last = last
        self.new: tuple[Checkpoint, str, str] | None = None

    def record(self, checkpoint: Checkpoint, note: str, cosignature: str) -> None:
        """Make `checkpoint` (received as `note`, answered with `cosignature`) the last one."""
        self.new = (checkpoint, note, cosignature)


class WitnessStore:
    """The witness's SQLite state: last cosigned checkpoint per origin, and evidence.

    One connection, used by one thread at a time (a lock); several stores on one file,
    in one process or many, serialise on SQLite's write lock (BEGIN IMMEDIATE).
    """

    SCHEMA: ClassVar[str] = """
        CREATE TABLE IF NOT EXISTS checkpoints (
            origin      TEXT PRIMARY KEY,
            size        INTEGER NOT NULL,
            root_hash   BLOB NOT NULL,
            note        TEXT NOT NULL,   -- as received: the log's signature
            cosignature TEXT NOT NULL,   -- what this witness answered
            cosigned_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS evidence (
            id          INTEGER PRIMARY KEY,
            received_at REAL NOT NULL,
            origin      TEXT NOT NULL,
            reason      TEXT NOT NULL,
            request     TEXT NOT NULL    -- the add-checkpoint body, log-signed checkpoint inside
        );
    """

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        new = not path.exists()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit reaches the disk before COMMIT returns, so before the answer.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(self.SCHEMA)
        if new:
            fsync_dir(path.parent)  # the new file's name is durable too

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def latest(self, origin: str) -> Cosigned:
        """Return what was last cosigned for `origin` (NEVER_COSIGNED if nothing)."""
        with self._lock:
            return self._read(origin)

    def _read(self, origin: str) -> Cosigned:
        row = self._db.execute(
            "SELECT size, root_hash FROM checkpoints WHERE origin = ?", (origin,)
        ).fetchone()
        return NEVER_COSIGNED if row is None else Cosigned(row[0], bytes(row[1]))

    @contextmanager
    def advance(self, origin: str) -> Iterator[StateUpdate]:
        """Hold the database write lock; yield `origin`'s state; on a clean exit store what
        was recorded and commit durably. An exception rolls back and propagates."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                step = StateUpdate(self._read(origin))
                yield step
                if step.new is not None:
                    checkpoint, note, cosignature = step.new
                    self._db.execute(
                        "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) "
                        "DO UPDATE SET size = excluded.size, root_hash = excluded.root_hash, "
                        "note = excluded.note, cosignature = excluded.cosignature, "
                        "cosigned_at = excluded.cosigned_at",
                        (
                            origin,
                            checkpoint.size,
                            checkpoint.root_hash,
                            note,
                            cosignature,
                            time.time(),
                        ),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def keep_evidence(self, origin: str, reason: str, request: str) -> None:
        """Record a log-signed request that was refused as possible log misbehavior."""
        with self._lock:
            self._db.execute(
                "INSERT INTO evidence (received_at, origin, reason, request) VALUES (?, ?, ?, ?)",
                (time.time(), origin, reason, request),
            )

    def evidence(self) -> list[tuple[str, str, str]]:
        """Return (origin, reason, request) of every kept request, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT origin, reason, request FROM evidence ORDER BY id")
            return [tuple(row) for row in rows]


# --- the witness ----------------------------------------------------------------------------


def trusted_logs(verifiers: Iterable[Verifier]) -> dict[str, tuple[Verifier, ...]]:
    """Group log verifier keys by key name, which is the log's origin: several keys with one
    name are one log's (rotated) keys. Raises AmbiguousVerifierError as check_logs."""
    logs: dict[str, list[Verifier]] = {}
    for v in verifiers:
        logs.setdefault(v.name, []).append(v)
    return check_logs(logs)


def check_logs(logs: Mapping[str, Collection[Verifier]]) -> dict[str, tuple[Verifier, ...]]:
    """Return `logs` (origin -> its keys) with each log's keys once. Raises
    AmbiguousVerifierError for a log with two different keys of one (name, key ID), which
    would make every note of that log unverifiable (gateway.note.open_note)."""
    checked: dict[str, tuple[Verifier, ...]] = {}
    for origin, keys in logs.items():
        unique: dict[tuple[str, int], Verifier] = {}
        for v in keys:
            if unique.setdefault((v.name, v.key_id), v) != v:
                raise AmbiguousVerifierError(
                    f"log {origin!r}: got 2 keys {v.name}+{v.key_id:08x}, want 1"
                )
        checked[origin] = tuple(unique.values())
    return checked


class Witness:
    """Cosigns checkpoints of the configured logs, each only if it extends the last one."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, Collection[Verifier]],
        store: WitnessStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer, self.store, self.clock = signer, store, clock
        self.logs = check_logs(logs)

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """Return this witness's cosignature lines for the checkpoint in `note`, once the log's
        signature verifies and the checkpoint extends the last one cosigned, which it then
        is (durably). Raises a WitnessError subclass, in the spec's order (module docstring)."""
        origin, checkpoint = "?", None
        try:
            request = AddCheckpointRequest(old_size, tuple(proof), note)
            origin = claimed_origin(note)
            checkpoint = self._open(origin, note)
            if old_size > checkpoint.size:
                raise MalformedRequest(
                    f"old size: got {old_size}, want at most the checkpoint's {checkpoint.size}"
                )
            with self.store.advance(checkpoint.origin) as step:
                check_extends(step.last, old_size, proof, checkpoint)
                # Sign what was parsed, re-encoded (identical text: Checkpoint.parse round
                # trips): a parser mismatch can then only fail, never cosign something else.
                line = self.signer.cosign(checkpoint.to_text(), int(self.clock()))
                step.record(checkpoint, note, line)
            # Committed: only now does the cosignature leave.
        except WitnessError as e:
            log.log(e.log_level, "refused %s (%d): %s", origin, e.status, e)
            if e.evidence and checkpoint is not None:
                self.store.keep_evidence(origin, str(e), request.encode().decode())
                log.error("kept the log-signed request of %s as evidence", origin)
            raise
        log.info(
            "cosigned %s at size %d (old size %d)", checkpoint.origin, checkpoint.size, old_size
        )
        return [line]

    def _open(self, origin: str, note: str) -> Checkpoint:
        """Return the checkpoint in `note` once one of the keys of log `origin` verifies it."""
        keys = self.logs.get(origin)
        if keys is None:
            raise UnknownLog(f"origin: got {origin[:100]!r}, want a configured log")
        try:
            opened = open_note(note, keys)
        except (UnverifiedNoteError, InvalidSignatureError) as e:
            raise UntrustedCheckpoint(f"checkpoint of {origin}: {e}") from None
        try:
            checkpoint = Checkpoint.parse(opened.text)
        except CheckpointFormatError as e:
            raise MalformedRequest(f"checkpoint of {origin}: {e}") from None
        if checkpoint.size > MAX_STORED_SIZE:
            raise MalformedRequest(f"tree size: got {checkpoint.size}, want at most 2**63 - 1")
        return checkpoint


def claimed_origin(note: str) -> str:
    """Return the first line of the text of signed note `note`, unverified: the origin that
    names the keys to verify it with. Raises MalformedRequest if it is no signed note."""
    try:
        text, _ = parse_note(note)
    except NoteError as e:
        raise MalformedRequest(f"checkpoint note: {e}") from None
    return text.partition("\n")[0]


def check_extends(
    last: Cosigned, old_size: int, proof: Sequence[bytes], checkpoint: Checkpoint
) -> None:
    """Check that `checkpoint` may be cosigned after `last`, given the client's `old_size`
    and consistency `proof`. Raises OldSizeConflict, InconsistentProof, ForkedRoot."""
    if old_size != last.size:
        raise OldSizeConflict(old_size, last.size)
    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        raise InconsistentProof(
            f"root of the empty tree: got {checkpoint.root_hash.hex()}, want {EMPTY_ROOT.hex()}"
        )
    if checkpoint.size == last.size and checkpoint.root_hash != last.root_hash:
        raise ForkedRoot(last.size, checkpoint.root_hash, last.root_hash)
    try:
        # With old size 0 only an empty proof passes: the empty tree prefixes every tree.
        verify_consistency(last.size, checkpoint.size, last.root_hash, checkpoint.root_hash, proof)
    except ProofError as e:
        raise InconsistentProof(
            f"consistency proof {last.size} -> {checkpoint.size}: {e}"
        ) from None


# --- the witness key -----------------------------------------------------------------------


class KeyFileError(ValueError):
    """A witness key file that cannot be used as asked; str() says why."""


def load_or_create_key(path: Path, name: str | None) -> CosignatureSigner:
    """Return the witness key in `path`, creating it with key name `name` (mode 0600) if
    absent. Requires `name` then; if given, it must be the stored key's name. Raises
    KeyFileError, KeyFormatError for an unreadable key file, OSError."""
    if not path.exists():
        if name is None:
            raise KeyFileError(f"no witness key at {path}: give --name to create one")
        write_new_key(path, CosignatureSigner.generate(name))
        log.info("created witness key %s", path)
    signer = CosignatureSigner.parse(path.read_text().strip())
    if name is not None and name != signer.name:
        raise KeyFileError(f"witness key name: got {name!r}, but {path} is {signer.name!r}")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("witness key %s is readable by others: chmod 600 it", path)
    return signer


# --- HTTP ------------------------------------------------------------------------------------

WITNESS = web.AppKey("witness", Witness)


def make_witness_app(
    signer: CosignatureSigner,
    logs: Mapping[str, Collection[Verifier]],
    data_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Return the witness's aiohttp app; its state lives in `data_dir` (opened at startup).
    Raises AmbiguousVerifierError for two different keys with one (name, key ID)."""
    check_logs(logs)  # fail now, not at startup

    async def witness_ctx(app: web.Application) -> AsyncIterator[None]:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = WitnessStore(data_dir / STATE_FILE)
        app[WITNESS] = Witness(signer, logs, store, clock=clock)
        yield
        store.close()

    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        handler_args={"logger": server_logger("pharmasync.witness.http")},
    )
    app.cleanup_ctx.append(witness_ctx)
    app.router.add_post(ADD_CHECKPOINT_PATH, add_checkpoint)
    return app


async def add_checkpoint(request: web.Request) -> web.Response:
    """POST /add-checkpoint: answer the cosignature lines, or the refusal's status."""
    try:
        body = AddCheckpointRequest.parse(await request.read())
    except MalformedRequest as e:
        log.info("refused a malformed request from %s: %s", request.remote, e)
        return _refusal(e)
    witness = request.app[WITNESS]
    try:  # in a thread: verifying, signing and the fsync of the commit all block
        lines = await asyncio.to_thread(
            witness.add_checkpoint, body.old_size, body.proof, body.note
        )
    except WitnessError as e:
        return _refusal(e)
    return web.Response(text="".join(lines))


def _refusal(error: WitnessError) -> web.Response:
    if isinstance(error, OldSizeConflict):
        # Exactly this Content-Type: clients compare it whole (no charset parameter).
        body = f"{error.latest}\n".encode()
        return web.Response(status=error.status, body=body, content_type=SIZE_CONTENT_TYPE)
    return web.Response(status=error.status, text=f"{error}\n")


# --- command line ----------------------------------------------------------------------------


def log_vkeys(value: str) -> list[Verifier]:
    """Read a `--log-vkey` value: a vkey, or @FILE holding one vkey per line ('#' comments)."""
    if value.startswith("@"):
        try:
            lines = Path(value[1:]).read_text().splitlines()
        except OSError as e:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {e.strerror}") from None
    else:
        lines = [value]
    vkeys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not vkeys:
        raise argparse.ArgumentTypeError(f"{value}: got no vkey, want one or more")
    try:
        return [Verifier.parse(vkey) for vkey in vkeys]
    except KeyFormatError as e:
        raise argparse.ArgumentTypeError(f"log vkey: {e}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the witness's options to `parser` (the subcommand's or main()'s own)."""
    parser.add_argument(
        "--data-dir",
        type=startup.data_dir,
        required=True,
        metavar="DIR",
        help=f"holds {KEY_FILE} (created on the first run) and {STATE_FILE}, the last "
        "checkpoint cosigned per log: never lose or reset it while the key is in use",
    )
    parser.add_argument(
        "--log-vkey",
        type=log_vkeys,
        action="extend",
        required=True,
        metavar="VKEY",
        help="a log's Ed25519 verifier key NAME+KEYID+BASE64, or @FILE with one per line; "
        "its key name is the log's origin (repeat for more logs or a log's rotated keys)",
    )
    parser.add_argument(
        "--name",
        help="the witness's key name, e.g. witness.example.org/w1: needed on the first run, "
        "when the key is created; afterwards it must match the key",
    )
    parser.add_argument(
        "--host",
        type=startup.host,
        default="127.0.0.1",
        help="address to listen on (default %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=startup.port,
        default=DEFAULT_PORT,
        help="port to listen on (default %(default)s)",
    )
    parser.set_defaults(handler=run)


DESCRIPTION: Final = (
    "Run a C2SP tlog-witness: cosign a log's signed checkpoints (POST /add-checkpoint) only "
    "when a consistency proof shows each one extends the last, so that no two witnessed "
    "views of a log can disagree. Prints the witness's vkey for the log operators."
)


EPILOG: Final = examples(
    "pharmasync witness --data-dir witness-data --name witness.example.org/w1 "
    f"--log-vkey @ledger.vkey --port {DEFAULT_PORT}"
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `witness` command to the top-level `pharmasync` parser."""
    parser = commands.add_parser(
        "witness",
        help="run a witness that cosigns the ledger's checkpoints",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Start the witness from parsed arguments; serve until SIGINT or SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    startup.check_can_listen(args.host, args.port)  # before a key is made for nothing
    try:
        logs = trusted_logs(args.log_vkey)
        args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = datalock.acquire(args.data_dir)  # one witness per folder; FolderBusy is an OSError
        signer = load_or_create_key(args.data_dir / KEY_FILE, args.name)
    except (KeyFileError, KeyFormatError, AmbiguousVerifierError, OSError) as e:
        print(f"pharmasync witness: error: {e}", file=sys.stderr)
        return 1
    vkey = signer.verifier().to_vkey()
    print(f"witness vkey: {vkey}", flush=True)  # what log operators add to their config

    def ready() -> None:
        log.info("witness %s for %d logs: %s", signer.name, len(logs), ", ".join(sorted(logs)))
        log.info("listening on http://%s:%d%s", args.host, args.port, ADD_CHECKPOINT_PATH)

    asyncio.run(
        startup.serve_app(
            make_witness_app(signer, logs, args.data_dir),
            args.host,
            args.port,
            opening=f"the witness state in {args.data_dir}",
            on_ready=ready,
            access_log=None,
        )
    )
    lock.release()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pharmasync witness` on its own (python -m cloud.witness.server); return the status."""
    parser = startup.Parser(prog="pharmasync witness", description=DESCRIPTION, epilog=EPILOG)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except startup.StartupError as e:
        print(f"pharmasync witness: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

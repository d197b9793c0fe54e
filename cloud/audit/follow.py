"""The log follower: an auditor's independent, continuous check of the ledger's whole log.

Each poll (`Follower.poll`), in order:

    log key      /v1/log/vkey must be the pinned key (pinned from --log-vkey, or trusted
                 on first use); any change is LOG KEY CHANGED
    checkpoint   /v1/checkpoint must be signed by that key, for the pinned origin
    size         smaller than the last verified one: ROLLBACK/REWRITE; the same with
                 another root: SPLIT VIEW; larger: go on
    consistency  the log's consistency proof from the last verified tree must hold
                 (RFC 9162 section 2.1.4.2), else INCONSISTENT HISTORY
    entries      every new entry is downloaded, page by page, and checked: a known kind;
                 a batch header that decodes, whose gateway signature verifies and that
                 follows its gateway's previous batch (seq + 1, prev hash = hash of the
                 previous header); a registry change in canonical form signed by its
                 owner key; a gateway event in canonical form, signed by its gateway,
                 the next of that gateway's event seqs (from 0); a contract transaction
                 or state root of the right form (cloud/log/kinds.py, the table of entry
                 kinds, says what is checked of each); else BAD ENTRY, BROKEN
                 GATEWAY CHAIN or BROKEN GATEWAY EVENT SEQUENCE. With `readings`, each
                 batch's leaves too (count, time span, Merkle root, every box
                 signature), else BAD READINGS; and each reading (box, seq) against those
                 seen before (SeenReadings, kept across polls): a leaf carrying it again
                 with the same bytes is a duplicate sighting (boxes travel between
                 gateways: counted), one with other bytes an equivocation (the box's key
                 may be cloned: reported, but not the log's misbehaviour, so no alarm)
    root         the entries, folded into the compact range of all entries seen, must
                 give the checkpoint's root, else ENTRIES DO NOT MATCH CHECKPOINT

Misbehaviour raises `Misbehaviour`, whose `render()` is the loud alarm; the state file is
written only after a poll verified everything, so an alarm leaves it as it was and the
next run raises the same alarm again.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, TextIO

import aiohttp

from cloud.audit.follow_state import (
    SOURCE_FIRST_USE,
    SOURCE_GIVEN,
    Equivocation,
    FollowState,
    GatewayHead,
    SeenReadings,
    StateError,
    load_state,
    save_state,
)
from cloud.audit.log_client import MAX_PAGE, FetchError, LogClient, ProtocolError
from cloud.log import kinds, tlog
from cloud.log.compact import CompactRange
from cloud.log.kinds import Owners
from device import reading
from gateway import batch
from gateway.checkpoint import Checkpoint, OriginMismatchError, open_checkpoint
from gateway.merkle_verify import ProofError, verify_consistency
from gateway.note import InvalidSignatureError, NoteError, UnverifiedNoteError, Verifier

EXIT_OK: Final = 0
EXIT_NETWORK: Final = 1  # the log could not be read, after retries
EXIT_USAGE: Final = 2  # arguments or the state file are wrong
EXIT_MISBEHAVIOUR: Final = 3  # the log was caught misbehaving
ALARM_PREFIX: Final = "!!! "
EQUIVOCATION_PREFIX: Final = "EQUIVOCATION: "  # a report line, not an alarm: the log is honest


class Alarm(enum.Enum):
    """The misbehaviour a follower detects; the value heads the alarm."""

    KEY_CHANGED = "LOG KEY CHANGED"
    BAD_CHECKPOINT = "BAD CHECKPOINT"
    ROLLBACK = "ROLLBACK/REWRITE"
    SPLIT_VIEW = "SPLIT VIEW"
    INCONSISTENT = "INCONSISTENT HISTORY"
    BAD_ENTRY = "BAD ENTRY"
    CHAIN = "BROKEN GATEWAY CHAIN"
    BAD_READINGS = "BAD READINGS"
    ROOT_MISMATCH = "ENTRIES DO NOT MATCH CHECKPOINT"
    EVENTS = "BROKEN GATEWAY EVENT SEQUENCE"
    AUTHORITY = "CHANGE WITHOUT AUTHORITY"


class Misbehaviour(Exception):
    """The log did something an honest log never does. `.alarm` says what, `.facts` are
    (label, value) lines, `.evidence` (label, signed note) pairs worth keeping."""

    def __init__(
        self,
        alarm: Alarm,
        summary: str,
        facts: Sequence[tuple[str, str]] = (),
        evidence: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.alarm = alarm
        self.summary = summary
        self.facts = tuple(facts)
        self.evidence = tuple(evidence)
        super().__init__(f"{alarm.value}: {summary}")

    def render(self) -> str:
        """Return the multi-line alarm, every line starting with '!!! '."""
        lines = [f"{self.alarm.value}: {self.summary}", ""]
        width = max((len(label) for label, _ in self.facts), default=0)
        lines += [f"  {label:<{width}}  {value}" for label, value in self.facts]
        for label, note in self.evidence:
            lines += ["", f"--- {label} ---", *note.rstrip("\n").split("\n")]
        lines += ["", "Nothing from this poll was trusted; the state file is unchanged."]
        return "\n".join((ALARM_PREFIX + line).rstrip() for line in lines)


class ConfigError(ValueError):
    """The follower's arguments contradict its state (e.g. another pinned log key)."""


@dataclass(frozen=True)
class PollResult:
    """What one poll verified."""

    old_size: int
    size: int
    root: bytes
    origin: str
    entries: int  # new entries verified
    readings: int  # readings verified (with `readings`)
    pinned: str | None  # the log key pinned by this poll (first use), else None
    pinned_source: str
    duplicates: int = 0  # leaves that carried a reading seen before, same bytes
    equivocations: tuple[Equivocation, ...] = ()  # ... and other bytes


class Progress:
    """Prints 'verified n / total entries (rate/s)' to `stream` at most every `every_s`."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.shown = self.started
        self.shown_done = 0  # entries counted in the last line printed (0: none printed)

    def _line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        return (
            f"  verified {self.done:,} / {self.total:,} entries "
            f"({self.done / elapsed:,.0f}/s, {elapsed:.1f} s)"
        )

    def advance(self, count: int) -> None:
        """Count `count` more verified entries; print a line if it is time to."""
        self.done += count
        now = self.clock()
        if self.stream is not None and now - self.shown >= self.every_s:
            self.shown, self.shown_done = now, self.done
            print(self._line(), file=self.stream, flush=True)

    def finish(self) -> None:
        """Print the final count if progress was shown and the last line is not it yet
        (short polls stay quiet)."""
        if self.stream is not None and 0 < self.shown_done < self.done:
            print(self._line(), file=self.stream, flush=True)


def check_batch_readings(index: int, header: batch.BatchHeader, data: bytes) -> int:
    """Check batch entry `index`'s readings against its header: whole 110-byte readings,
    count, time span, Merkle root, and every box signature. Return the count.

    Raises Misbehaviour (BAD_READINGS) naming the first problem.
    """
    return len(batch_leaves(index, header, data))


def batch_leaves(index: int, header: batch.BatchHeader, data: bytes) -> list[bytes]:
    """check_batch_readings, returning the batch's leaves. Raises Misbehaviour."""
    where = [
        ("entry", str(index)),
        ("gateway", header.gateway_key.hex()),
        ("batch", str(header.seq)),
    ]
    if len(data) % reading.SIZE:
        raise Misbehaviour(
            Alarm.BAD_READINGS,
            f"got {len(data)} bytes of readings, want a multiple of {reading.SIZE}",
            where,
        )
    wires = [data[i : i + reading.SIZE] for i in range(0, len(data), reading.SIZE)]
    try:
        batch.check_contents(header, wires)
    except (batch.BatchError, reading.ReadingError) as e:
        raise Misbehaviour(Alarm.BAD_READINGS, str(e), where) from e
    for position, wire in enumerate(wires):
        if not reading.verify(wire):
            decoded = reading.decode(wire)
            raise Misbehaviour(
                Alarm.BAD_READINGS,
                f"reading {position} does not verify under its box key",
                [*where, ("box", decoded.key.hex()), ("seq", str(decoded.seq))],
            )
    return wires


_ALARMS: Final = {
    kinds.Rule.FORM: Alarm.BAD_ENTRY,
    kinds.Rule.CHAIN: Alarm.CHAIN,
    kinds.Rule.AUTHORITY: Alarm.AUTHORITY,
    kinds.Rule.SEQUENCE: Alarm.EVENTS,
}


def check_entry(
    index: int,
    entry: bytes,
    gateways: dict[bytes, GatewayHead],
    events: dict[bytes, int] | None = None,
    owners: Owners | None = None,
) -> batch.BatchHeader | None:
    """Check log entry `index` by its kind's row of the entry table (cloud/log/kinds.py)
    and fold it in: for a batch, its gateway's chain in `gateways`; for a gateway event,
    its gateway's last event seq in `events`; for a registry or configuration entry, the
    owner set in `owners` (None: a fresh Owners, nothing pinned).

    Returns the batch header of a batch entry, None for other kinds. Raises Misbehaviour:
    BAD_ENTRY for an unknown kind or an entry that does not parse or verify (a batch
    header or event that does not decode or whose gateway signature fails, a registry or
    configuration change that is not canonical or whose signature fails, a contract
    transaction or state root of the wrong form); AUTHORITY for a registry change by a key
    that is not an owner at that point of the log, an owner change its rules forbid
    (gateway/config_entry.py), or a bootstrap that does not name the pinned owners; CHAIN
    if a batch does not follow its gateway's previous batch (the first must be seq 0, as
    the follower reads from entry 0); EVENTS if an event's seq is not its gateway's next.
    """
    state = kinds.LogState(
        gateways, {} if events is None else events, Owners() if owners is None else owners
    )
    try:
        _, value = kinds.check(state, index, entry)
    except kinds.EntryError as e:
        raise Misbehaviour(_ALARMS[e.rule], e.summary, e.facts) from e
    return value if isinstance(value, batch.BatchHeader) else None


class Follower:
    """Polls one log and verifies everything it appends, keeping state in `state_path`."""

    def __init__(
        self,
        client: LogClient,
        state_path: Path,
        *,
        log_vkey: str | None = None,
        readings: bool = False,
        progress: TextIO | None = None,
        page_size: int = MAX_PAGE,
        concurrency: int = 8,
        owners: Collection[bytes] | None = None,
    ) -> None:
        """`log_vkey` pins the log key (else trust on first use of /v1/log/vkey); with
        `readings` every batch's readings are downloaded and checked too; `owners` pins the
        first owner keys, which the log's bootstrap entry must name exactly. Raises
        KeyFormatError for a malformed `log_vkey`."""
        self.pinned_owners = None if owners is None else frozenset(owners)
        self.client = client
        self.state_path = state_path
        self.given_key = Verifier.parse(log_vkey.strip()) if log_vkey is not None else None
        self.readings = readings
        self.progress = progress
        self.page_size = page_size
        self.concurrency = concurrency

    async def _pin(self, state: FollowState | None) -> tuple[FollowState, str | None]:
        """Return the state to verify against (a fresh one at first use) and the key pinned
        now, if any. Raises ConfigError, Misbehaviour (KEY_CHANGED), FetchError."""
        served = await self.client.vkey()
        if state is not None:
            if self.given_key is not None and self.given_key.to_vkey() != state.log_vkey:
                raise ConfigError(
                    f"--log-vkey {self.given_key.to_vkey()!r} but {self.state_path} pins "
                    f"{state.log_vkey!r}: use another --state, or remove it to start afresh"
                )
            pinned = state.log_vkey
        elif self.given_key is not None:
            pinned = self.given_key.to_vkey()
        else:
            try:
                pinned = Verifier.parse(served).to_vkey()
            except NoteError as e:
                raise ProtocolError(f"/v1/log/vkey: {e}") from e
            return FollowState(self.client.url, pinned, SOURCE_FIRST_USE), pinned
        if served != pinned:
            raise Misbehaviour(
                Alarm.KEY_CHANGED,
                "the log now serves another key than the one pinned",
                [("log", self.client.url), ("pinned", pinned), ("served", served)],
            )
        if state is None:
            return FollowState(self.client.url, pinned, SOURCE_GIVEN), pinned
        return state, None

    async def _checkpoint(self, state: FollowState) -> tuple[str, Checkpoint]:
        """Fetch and open the latest checkpoint under the pinned key and origin."""
        note = await self.client.checkpoint()
        facts = [("log", self.client.url), ("log key", state.log_vkey)]
        try:
            return note, open_checkpoint(note, Verifier.parse(state.log_vkey), origin=state.origin)
        except OriginMismatchError as e:
            raise Misbehaviour(Alarm.BAD_CHECKPOINT, str(e), facts, [("served", note)]) from e
        except (InvalidSignatureError, UnverifiedNoteError) as e:
            raise Misbehaviour(
                Alarm.BAD_CHECKPOINT,
                f"not signed by the pinned log key: {e}",
                facts,
                [("served", note)],
            ) from e
        except NoteError as e:  # malformed: not a note or not a checkpoint at all
            raise ProtocolError(f"/v1/checkpoint: {e}") from e

    def _compare(self, state: FollowState, note: str, checkpoint: Checkpoint) -> None:
        """Raise Misbehaviour if the checkpoint rolls back or splits the verified view."""
        facts = [("log", self.client.url), ("log key", state.log_vkey)]
        evidence = [("checkpoint verified before", state.checkpoint), ("checkpoint now", note)]
        if checkpoint.size < state.size:
            raise Misbehaviour(
                Alarm.ROLLBACK,
                f"the log shrank from {state.size} to {checkpoint.size} entries",
                [*facts, ("size before", str(state.size)), ("size now", str(checkpoint.size))],
                evidence,
            )
        if checkpoint.size == state.size and checkpoint.root_hash != state.root:
            raise Misbehaviour(
                Alarm.SPLIT_VIEW,
                f"two different trees of size {state.size}, both signed by the log",
                [
                    *facts,
                    ("root before", state.root.hex()),
                    ("root now", checkpoint.root_hash.hex()),
                ],
                evidence if state.checkpoint else [("checkpoint now", note)],
            )

    async def _consistency(self, state: FollowState, note: str, checkpoint: Checkpoint) -> None:
        """Require the log's consistency proof from the verified tree to the new one."""
        if state.size == 0:
            return  # the empty tree is a prefix of every tree: nothing to prove
        proof = await self.client.consistency(state.size, checkpoint.size)
        try:
            verify_consistency(state.size, checkpoint.size, state.root, checkpoint.root_hash, proof)
        except ProofError as e:
            raise Misbehaviour(
                Alarm.INCONSISTENT,
                f"the tree of size {checkpoint.size} does not extend the verified one: {e}",
                [
                    ("log", self.client.url),
                    ("verified", f"size {state.size} root {state.root.hex()}"),
                    ("now", f"size {checkpoint.size} root {checkpoint.root_hash.hex()}"),
                ],
                [("checkpoint verified before", state.checkpoint), ("checkpoint now", note)],
            ) from e

    async def _readings(
        self, batches: list[tuple[int, batch.BatchHeader]]
    ) -> list[tuple[int, list[bytes]]]:
        """Download and check the leaves of `batches` (index, header), a few at a time;
        return (index, leaves) in the order given."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(index: int, header: batch.BatchHeader) -> list[bytes]:
            async with limit:
                data = await self.client.batch_readings(index)
            return batch_leaves(index, header, data)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, h)) for i, h in batches]
        except BaseExceptionGroup as failed:
            # An alarm outranks a network error that happened beside it.
            errors = failed.exceptions
            raise next((e for e in errors if isinstance(e, Misbehaviour)), errors[0]) from None
        return [(i, t.result()) for (i, _), t in zip(batches, tasks, strict=True)]

    async def _catch_up(
        self, state: FollowState, checkpoint: Checkpoint, seen: SeenReadings | None
    ) -> tuple[CompactRange, dict[bytes, GatewayHead], dict[bytes, int], Owners, Sightings]:
        """Download, check and fold entries [state.size, checkpoint.size); return the new
        compact range, gateway heads, gateways' last event seqs, the owners and, with
        `seen` (the readings mode), the readings verified and sighted again. Raises
        Misbehaviour, FetchError."""
        frontier = state.frontier()
        gateways = dict(state.gateways)
        events = dict(state.events)
        owners = Owners(
            state.owners, self.pinned_owners, state.ack_keys, state.regulators, state.grants
        )
        progress = Progress(checkpoint.size - state.size, self.progress)
        sightings = Sightings()
        index = state.size
        while index < checkpoint.size:
            page = await self.client.entries(index, min(checkpoint.size, index + self.page_size))
            headers = []
            for offset, entry in enumerate(page):
                header = check_entry(index + offset, entry, gateways, events, owners)
                if header is not None:
                    headers.append((index + offset, header))
                frontier.append_leaf_hash(tlog.entry_leaf(entry))
            if seen is not None:
                for entry_index, leaves in await self._readings(headers):
                    sightings.add(seen, entry_index, leaves)  # in log order: first is first
            index += len(page)
            progress.advance(len(page))
        progress.finish()
        return frontier, gateways, events, owners, sightings

    async def poll(self) -> PollResult:
        """Verify the log's latest checkpoint and every entry since the last poll; save
        the new state. Raises Misbehaviour, FetchError, ConfigError, StateError, OSError."""
        stored = load_state(self.state_path)
        state, pinned_now = await self._pin(stored)
        note, checkpoint = await self._checkpoint(state)
        self._compare(state, note, checkpoint)
        old_size = state.size
        entries = 0
        sightings = Sightings()
        seen = (
            SeenReadings(SeenReadings.path_for(self.state_path), fresh=stored is None)
            if self.readings
            else None
        )
        try:
            if checkpoint.size > state.size:
                await self._consistency(state, note, checkpoint)
                frontier, gateways, events, owners, sightings = await self._catch_up(
                    state, checkpoint, seen
                )
                if frontier.root() != checkpoint.root_hash:
                    raise Misbehaviour(
                        Alarm.ROOT_MISMATCH,
                        f"entries [{state.size}, {checkpoint.size}) as served do not give the "
                        "signed root",
                        [
                            ("log", self.client.url),
                            ("computed root", frontier.root().hex()),
                            ("signed root", checkpoint.root_hash.hex()),
                        ],
                        [("checkpoint now", note)],
                    )
                entries = checkpoint.size - state.size
                state = replace(
                    state,
                    compact_range=frontier.hashes,
                    size=checkpoint.size,
                    root=checkpoint.root_hash,
                    gateways=gateways,
                    events=events,
                    owners=owners.keys,
                    ack_keys=owners.ack_keys,
                    regulators=owners.regulators,
                    grants=owners.grants,
                )
            if seen is not None:
                seen.commit()  # before the state: a crash between leaves it ahead, not behind
            if entries or stored is None or state.checkpoint != note:
                state = replace(
                    state, url=self.client.url, origin=checkpoint.origin, checkpoint=note
                )
                save_state(self.state_path, state)
        finally:
            if seen is not None:
                seen.close()
        return PollResult(
            old_size=old_size,
            size=checkpoint.size,
            root=checkpoint.root_hash,
            origin=checkpoint.origin,
            entries=entries,
            readings=sightings.readings,
            pinned=pinned_now,
            pinned_source=state.log_vkey_source,
            duplicates=sightings.duplicates,
            equivocations=tuple(sightings.equivocations),
        )


class Sightings:
    """What one poll learnt of the readings it verified, leaf by leaf (SeenReadings)."""

    def __init__(self) -> None:
        self.readings = 0  # leaves verified
        self.duplicates = 0
        self.equivocations: list[Equivocation] = []

    def add(self, seen: SeenReadings, entry: int, leaves: list[bytes]) -> None:
        """Record the verified leaves of batch entry `entry` (decoded: they verified)."""
        for position, wire in enumerate(leaves):
            r = reading.decode(wire)
            found = seen.record(entry, position, r.key, r.seq, wire)
            if isinstance(found, Equivocation):
                self.equivocations.append(found)
            elif found:
                self.duplicates += 1
        self.readings += len(leaves)


def _count(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


def describe_poll(result: PollResult, state_path: Path) -> list[str]:
    """Return the lines a person reads after a successful poll."""
    lines = []
    if result.pinned is not None:
        how = "given with --log-vkey" if result.pinned_source == SOURCE_GIVEN else "first use"
        lines.append(f"pinned log key {result.pinned} ({how}) in {state_path}")
        if result.pinned_source == SOURCE_FIRST_USE:
            lines.append("  trusted on first use: compare it with the key the operator publishes")
    head = f"✓ {result.origin}: size {result.size}, root {result.root.hex()[:16]}…"
    if result.size == result.old_size:
        lines.append(f"{head} (no new entries)")
        return lines
    lines.append(
        f"{head}: {_count(result.entries, 'new entry', 'new entries')} verified"
        + (f", {_count(result.readings, 'reading', 'readings')}" if result.readings else "")
        + (
            f" ({_count(result.duplicates, 'duplicate sighting', 'duplicate sightings')})"
            if result.duplicates
            else ""
        )
        + (f", consistent with size {result.old_size}" if result.old_size else "")
    )
    lines += [describe_equivocation(e) for e in result.equivocations]
    return lines


def describe_equivocation(e: Equivocation) -> str:
    """One line for an equivocation the follower found (a box's problem, not the log's)."""
    return (
        f"{EQUIVOCATION_PREFIX}box {e.box.hex()} signed two readings with seq {e.seq}: "
        f"entry {e.first[0]} leaf {e.first[1]} and entry {e.again[0]} leaf {e.again[1]} "
        "differ (its key may be cloned; GET /v1/devices/<box>/equivocations has both)"
    )


async def follow(
    url: str,
    state_path: Path,
    *,
    log_vkey: str | None = None,
    readings: bool = False,
    owners: Collection[bytes] | None = None,
    once: bool = False,
    interval_s: float = 30.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
) -> int:
    """Poll the log at `url` once, or every `interval_s` seconds until cancelled; return
    the exit status: EXIT_MISBEHAVIOUR after printing an alarm to `err`, EXIT_NETWORK when
    the log cannot be read after retries, EXIT_USAGE for a bad key or state file."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = LogClient(session, url, retries=retries, backoff_s=backoff_s)
        try:
            follower = Follower(
                client,
                state_path,
                log_vkey=log_vkey,
                readings=readings,
                progress=err,
                owners=owners,
            )
        except NoteError as e:
            print(f"error: --log-vkey: {e}", file=err)
            return EXIT_USAGE
        while True:
            try:
                result = await follower.poll()
            except Misbehaviour as e:
                print(e.render(), file=err, flush=True)
                return EXIT_MISBEHAVIOUR
            except FetchError as e:
                print(f"error: cannot read the log: {e}", file=err)
                return EXIT_NETWORK
            except (ConfigError, StateError, OSError) as e:
                print(f"error: {e}", file=err)
                return EXIT_USAGE
            for line in describe_poll(result, state_path):
                print(line, file=out, flush=True)
            if once:
                return EXIT_OK
            await asyncio.sleep(interval_s)

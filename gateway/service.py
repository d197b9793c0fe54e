"""The gateway core: verify, spool, acknowledge, seal. Transports (MQTT, BLE) hand every
message to `Gateway.receive`; nothing here knows how a reading arrived.

    submit() -> verify (signatures on a pool of threads; gateway/verify_pool.py) -> queue
             --(group commit on the spool thread)--> acks due -> seal

A reading is acknowledged only after the transaction holding it has committed: receive()
returns a future that resolves to the box's ack payload (device/ack.py) at that moment,
and boxes whose acknowledgement changed are announced to `on_ack` listeners (the MQTT
ingest publishes them). Commits are grouped (settings.spool.commit_interval_s) for
throughput; acknowledgements always follow their commit.

An ack is version 2 (the ranges of seqs committed, signed by the gateway key the owner
certified) unless the box's retained status reports older firmware (no "ack": 2), which
gets version 1 (the highest committed seq). Payloads are memoised per box and commit: one
signature per box per commit, not per reading.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from device import ack, cert, reading, schnorr, topics
from device.flash import fsync
from gateway import event, seqranges
from gateway.alarms import AlarmEngine, AlarmEvent, AlarmProfile, set_by
from gateway.batch import BatchHeader
from gateway.box_status import BoxStatusReporter
from gateway.lot_profiles import Applied, BoxLots, LotOn, combine
from gateway.ratelog import RateLimitedLog
from gateway.registry import Box, Registry
from gateway.settings import Settings
from gateway.spool import Accepted, Rejected, Spool, SpoolReader
from gateway.verify import ACCEPT, DUPLICATE, REJECT, Outcome, Verifier
from gateway.verify_pool import VerifyPool

log = logging.getLogger("pharmasync.gateway")
T = TypeVar("T")
# (box key, the oldest seq its ack must cover or None): the box's acknowledgement changed.
# Listeners make the payload (ack_payload) when they send it, so a box whose ack changes at
# every commit costs one signature per send, not one per commit.
AckListener = Callable[[bytes, int | None], None]
Done = asyncio.Future[bytes | None]  # a reading's ack payload once committed; None: rejected
COMMITTED = b""  # what submit(..., payload=False) resolves to once committed
# Accepted((...)) for the per-reading path: the tuple built in C, without the Python-level
# __new__ a NamedTuple call goes through (~0.15 µs less per reading; as verify.new_outcome).
new_accepted = functools.partial(tuple.__new__, Accepted)
AlarmListener = Callable[[list[AlarmEvent]], None]
ALARM_SAVE_S = 30.0  # persist the alarm engine's state this often (and at stop), but...
# ...spend at most 1/ALARM_SAVE_SHARE of the time saving it: the state holds every zone's
# MKT window (a day of readings per box), so a site of 1,000 boxes writes ~1.4 M samples
# per save, seconds of the event loop (bench/RESULTS.md, issue 13 part 3).
ALARM_SAVE_SHARE = 20
SEAL_AT_ONCE = 8  # batches sealed per trip to the spool thread (seal_due)
LIVE_SOURCE = "live:"  # the source of readings the live lane takes (gateway/live_lane.py)
LANE_TAKEN_MAX = 100_000  # (box, seq) the lane took whose persistent copy is still to come
STATUS_MAX = 4096  # bytes of a box's status JSON we parse; a longer one is ignored
# Container allocations between young garbage collections while the gateway runs (Python's
# default: 700). A reading allocates about ten (its future, tuples, decoded reading), freed
# by reference counting once committed; at the default a collection ran every ~70 readings
# and walked every reading still waiting for its commit, ~2.5 us of the event loop per
# reading (bench/RESULTS.md, issue 13 "per-reading hot path").
GC_YOUNG_THRESHOLD = 50_000


def load_certificate(settings: Settings, key: bytes, now: float | None = None) -> bytes | None:
    """Return the certificate settings.certificate names (hex text). Logs an error if it
    is not the owner's valid certificate of `key` for our site at `now` (default: the
    clock), for then boxes refuse our acks and keep their readings; it is still presented
    if it decodes, so each box reports why in its status. None if absent or unreadable."""
    path = settings.certificate
    if path is None:
        log.warning(
            "no [gateway] certificate: boxes trusting an owner key will keep their readings "
            "(make one with `pharmasync gateway certify`)"
        )
        return None
    try:
        data = bytes.fromhex(path.read_text().strip())
        c = cert.decode(data)
    except (OSError, ValueError) as e:  # CertError is a ValueError
        log.error("certificate %s unusable: %s", path, e)
        return None
    try:
        if c.gateway != key:
            raise cert.CertError(f"gateway key: got {c.gateway.hex()}, want ours {key.hex()}")
        if c.site != settings.site:
            raise cert.CertError(f"site: got {c.site!r}, want {settings.site!r}")
        cert.verify(data, c.owner, int(time.time() if now is None else now))
    except cert.CertError as e:
        log.error("certificate %s: %s: boxes will refuse our acks", path, e)
    return data


def write_atomic_text(path: Path, pieces: Iterable[str]) -> None:
    """Replace `path` with the text `pieces` make, written as they come (a temporary file,
    fsync, rename): a crash leaves the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.writelines(pieces)
        fsync(f)
    os.replace(tmp, path)


class Gateway:
    """Verifies, spools, acknowledges and seals readings (see the module docstring)."""

    def __init__(self, settings: Settings, registry: Registry, spool: Spool, secret: bytes) -> None:
        self.settings = settings
        self.registry = registry
        self.spool = spool
        self.secret = secret
        self.key = schnorr.pubkey(secret)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._reader = SpoolReader(spool.path)
        # Every seq committed per box, as ranges; and the highest, for status and BLE replay.
        self.ranges: dict[bytes, tuple[seqranges.Range, ...]] = spool.committed_ranges()
        self.committed: dict[bytes, int] = {b: r[-1][1] for b, r in self.ranges.items() if r}
        self.verifier = Verifier(registry, settings.verify, self._is_committed, self._stored)
        self.verify_pool = VerifyPool(self.verifier, settings.verify.threads, self._settle)
        # device id -> ack version its firmware speaks, from its retained status
        self.ack_versions: dict[str, int] = {}
        # The owner's certificate of our key (device/cert.py), presented once per session.
        self.certificate = load_certificate(settings, self.key)
        self.counts: Counter[str] = Counter()  # accepted, duplicate, and each reject reason
        self.rejects_by_box: dict[bytes, Counter[str]] = {}
        self.reject_log = RateLimitedLog(log)  # bounded lines; self.counts stay exact
        self.last_reading: dict[bytes, tuple[float, Any]] = {}  # box -> (when, decoded)
        self.ack_listeners: list[AckListener] = []
        self._device_ids: dict[bytes, str] = {}
        self.accepting = True  # False while the spool is over its size limit
        self.spool_nearly_full = False  # above warn_fraction of the limit: a site alarm
        # Accepted readings awaiting their commit: (row, reading, its future, payload wanted)
        self._queue: list[tuple[Accepted, reading.Reading, Done, bool]] = []
        self._rejects: list[Rejected] = []
        self._dup_waiters: list[tuple[bytes, Done, bool]] = []
        self._lane_taken: dict[tuple[bytes, int], None] = {}  # in the order taken
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._gc_threshold = gc.get_threshold()  # as it was before start(): stop() restores it
        # box -> (what it was made from: ranges and window, or v1 seq; ack payload)
        self._acks: dict[bytes, tuple[object, bytes]] = {}
        # Alarms are kept per box (a zone's boxes need not arrive in time order); the
        # events name the box's zone and label. State survives restarts in alarms.json.
        self.alarm_listeners: list[AlarmListener] = []
        # The lots the cloud says each box is on (gateway/lots_follow.py sets them): a
        # box's zone alarms on the strictest of its own profile and theirs (by device id).
        self.box_lots: dict[bytes, Sequence[LotOn]] = {}
        self.lots_applied: dict[str, Applied] = {}
        self._alarm_file = settings.data_dir / "alarms.json"
        self.alarms = self._load_alarms()
        self._alarms_saved = time.monotonic()
        self._alarm_save_s = 0.0  # what the last save took
        self.status_reporter = BoxStatusReporter(self, settings.events.status_interval_s)

    def _box(self, device_id: str) -> Box | None:
        return next((b for b in self.registry.all() if b.device_id == device_id), None)

    def _own_profile(self, box: Box | None) -> AlarmProfile:
        """The box's own alarm profile ([alarms.<name>], named in the registry)."""
        name = box.profile if box is not None else "default"
        return self.settings.alarms.get(name, self.settings.alarms["default"])

    def _applied(self, box: Box | None, device_id: str, now: float) -> Applied:
        """What the box's zone alarms on at `now`: its own profile and its lots'."""
        lots = self.box_lots.get(box.key, ()) if box is not None else ()
        applied = combine(self._own_profile(box), lots, int(now * 1000))
        self.lots_applied[device_id] = applied
        return applied

    def _profile(self, device_id: str) -> AlarmProfile:
        """The profile a zone seen for the first time (or restored) alarms on."""
        return self._applied(self._box(device_id), device_id, time.time()).profile

    def set_lots(self, lots: BoxLots, now: float) -> dict[str, Applied]:
        """Take the lots the cloud says each box is on and alarm on them from now: each
        registered box's zone on the strictest of its own profile and its lots' that apply
        at `now` (gateway/lot_profiles.py combine). Return the boxes (by device id) whose
        applied lots or conflicts changed, for the caller to log."""
        self.box_lots = dict(lots)
        changed = {}
        for box in self.registry.all():
            before = self.lots_applied.get(box.device_id)
            applied = self._applied(box, box.device_id, now)
            self.alarms.set_profile(box.device_id, applied.profile)
            was = ({}, ()) if before is None else (dict(before.lots), before.conflicts)
            if was != (dict(applied.lots), applied.conflicts):
                changed[box.device_id] = applied
        return changed

    def _name_lot(self, ev: AlarmEvent) -> AlarmEvent:
        """The event with the lot profile that set its limit named in its detail."""
        applied = self.lots_applied.get(ev.zone)
        if applied is None or not applied.lots:
            return ev
        own = self._own_profile(self._box(ev.zone))
        lot = set_by(ev.kind, own, applied.profile, applied.lots)
        return ev if lot is None else replace(ev, detail=f"{ev.detail}; lot profile {lot}")

    def _load_alarms(self) -> AlarmEngine:
        try:
            saved = json.loads(self._alarm_file.read_text())
            return AlarmEngine.restore(self._profile, saved)
        except FileNotFoundError:
            return AlarmEngine(self._profile)
        except (ValueError, KeyError, TypeError) as e:
            log.error("alarm state in %s unreadable (%s): starting afresh", self._alarm_file, e)
            return AlarmEngine(self._profile)

    def save_alarms(self) -> None:
        """Persist the alarm engine's state (atomically)."""
        started = time.monotonic()
        # Zone by zone (AlarmEngine.snapshot_text), not one JSON text of every zone's MKT
        # window at once: at 1,000 boxes that text and its lists peaked at ~270 MB.
        write_atomic_text(self._alarm_file, self.alarms.snapshot_text())
        self._alarms_saved = time.monotonic()
        self._alarm_save_s = self._alarms_saved - started

    async def _alarm_events(self, events: list[AlarmEvent]) -> None:
        """Log, queue for the cloud and announce alarm events."""
        if not events:
            return
        events = [self._name_lot(ev) for ev in events]
        for ev in events:
            level = logging.WARNING if ev.state == "raised" else logging.INFO
            log.log(level, "alarm %s %s for box %s: %s", ev.kind, ev.state, ev.zone, ev.detail)
        drafts = [
            event.alarm_draft(e.state, e.kind, e.zone, e.time_s, e.value_c, e.detail)
            for e in events
        ]
        await self.spool_call(self.spool.add_events, self.secret, drafts)
        for listener in self.alarm_listeners:
            listener(events)
        self.save_alarms()

    async def spool_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a spool method on the spool's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _stored(self, box: bytes, seq: int) -> bytes | None:
        # On this thread, without a trip to the spool's (SpoolReader says why): returns
        # without yielding to the event loop.
        return self._reader.stored(box, seq)

    def _device_id(self, box: bytes) -> str:
        """topics.device_id, remembered per box key (it names the box's alarm zone)."""
        name = self._device_ids.get(box)
        if name is None:
            name = self._device_ids[box] = topics.device_id(box)
        return name

    def _is_committed(self, box: bytes, seq: int) -> bool:
        return seqranges.contains(self.ranges.get(box, ()), seq)

    def ack_version(self, box: bytes) -> int:
        """The ack version a box gets: 1 if its status reports firmware without "ack": 2."""
        return self.ack_versions.get(self._device_id(box), ack.VERSION)

    def ack_payload(self, box: bytes, near: int | None = None) -> bytes:
        """The acknowledgement for a box, memoised per commit: one signature per box per
        commit, not per reading. Version 2 lists the newest ack.MAX_RANGES committed ranges,
        or, with `near` older than those, the ranges from the one holding `near` (a resent
        old reading must be covered, or the box would keep resending it). Version 1 names
        the highest committed seq, signed if settings.sign_acks."""
        ranges = self.ranges[box]
        if self.ack_version(box) == 1:
            made: object = ranges[-1][1]
        else:
            start = seqranges.window_start(ranges, near, ack.MAX_RANGES)
            made = (ranges, start)  # a new commit replaces the ranges tuple: compared by id
        cached = self._acks.get(box)
        if cached is not None and cached[0] == made:
            return cached[1]
        if isinstance(made, int):
            secret = self.secret if self.settings.sign_acks else None
            payload = ack.encode_v1(made, box, secret)
        else:
            payload = ack.encode(ranges[start : start + ack.MAX_RANGES], box, self.secret)
        self._acks[box] = (made, payload)
        return payload

    def box_status(self, device_id: str, payload: bytes) -> None:
        """Note a box's retained status: its "ack" field says which acks it accepts (none:
        firmware 0.1, version 1). Re-announces the box's ack if that changed."""
        if len(payload) > STATUS_MAX:
            return
        try:
            status = json.loads(payload)
        except (ValueError, RecursionError):
            # Over BLE firmware 0.1 sent its status cut at 240 bytes; newer firmware keeps
            # it whole (device/ble.py ble_status).
            status = {"state": "online"} if payload.startswith(b'{"state": "online"') else None
        if not isinstance(status, dict) or status.get("state") == "offline":
            return  # the last will says nothing about the firmware
        key = next((b.key for b in self.registry.all() if b.device_id == device_id), None)
        if key is not None:  # what the periodic box-status event reports of the box itself
            self.status_reporter.reports[key] = {
                k: status[k] for k in ("backlog", "battery_low") if k in status
            }
        version = 2 if status.get("ack") == 2 else 1
        if self.ack_versions.get(device_id) == version:
            return
        self.ack_versions[device_id] = version
        box = next((k for k in self.ranges if topics.device_id(k) == device_id), None)
        if box is not None:
            self._announce(box)

    # -- receiving -------------------------------------------------------------------

    def submit(
        self, wire: bytes, source: str, topic_id: str | None = None, payload: bool = True
    ) -> asyncio.Future[bytes | None]:
        """Take a message for verification and return at once a future resolving to the
        box's ack payload once it is committed (COMMITTED instead if not `payload`: the
        MQTT ingest publishes acks on its own, from `ack_listeners`), None if rejected.
        Checks before the signature run now; the signature on the verification threads;
        the rest on the event loop in arrival order (gateway/verify_pool.py). Never raises
        for bad input. Transports that read a stream (MQTT) call this; `receive` also
        waits for the verdict."""
        done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        now = time.time()
        if not self.accepting:
            # Over the spool limit: leave the reading with its box, which keeps it.
            self.counts["spool full"] += 1
            done.set_result(None)
            return done
        passed = self.verifier.precheck(wire, topic_id)
        if isinstance(passed, Outcome):
            self._settle(passed, wire, now, (source, done, payload))
        elif (copy := self._known_copy(wire, *passed)) is not None:
            self._settle(copy, wire, now, (source, done, payload))
        else:
            self.verify_pool.submit((wire, passed[0], passed[1], now, (source, done, payload)))
        return done

    def _known_copy(self, wire: bytes, r: reading.Reading, box: Box) -> Outcome | None:
        """The duplicate verdict for a byte-identical copy of a reading already accepted
        (committed, or waiting for its commit), without a second signature check: those
        bytes were verified when first accepted, and `Verifier.judge` would find the same
        (a copy of a committed reading is a duplicate before any time check). After an
        outage boxes resend whole backlogs while the gateway works through them
        (device/firmware.py, ack_timeout_s): millions of copies, each of which cost a
        verification (bench/RESULTS.md, issue 13 part 3). None: judge it as usual (new,
        different bytes, or pruned)."""
        earlier = self.verifier.pending.get((r.key, r.seq))
        if earlier is None and self._is_committed(r.key, r.seq):
            earlier = self._reader.stored(r.key, r.seq)
        if earlier is None or earlier != wire:
            return None
        return Outcome(DUPLICATE, "duplicate", "", r, box)

    async def receive(
        self, wire: bytes, source: str, topic_id: str | None = None
    ) -> asyncio.Future[bytes | None]:
        """`submit`, then wait until the message is judged (counted, and queued for the
        commit if accepted): the returned future resolves to its ack payload after the
        commit, or None if it was rejected. Never raises for bad input."""
        done = self.submit(wire, source, topic_id)
        if not done.done():
            await self.verify_pool.judged()
        return done

    def _settle(self, outcome: Outcome, wire: bytes, now: float, context: Any) -> None:
        """Act on a verdict: count and quarantine a reject, acknowledge a duplicate again,
        queue an accepted reading for the commit. On the event loop, in arrival order."""
        source, done, payload = context
        if outcome.verdict is not ACCEPT and source.startswith(LIVE_SOURCE):
            # The live lane's early copy (gateway/live_lane.py) of a message the persistent
            # session delivers again: that copy is the one judged, counted and kept.
            done.set_result(None)
            return
        if outcome.verdict is REJECT:
            self.counts[outcome.reason] += 1
            if outcome.reading is not None or outcome.reason == "bad signature":
                key = bytes(wire[1:33])
                self.rejects_by_box.setdefault(key, Counter())[outcome.reason] += 1
            self._rejects.append(Rejected(source, outcome.reason, outcome.detail, bytes(wire), now))
            self.reject_log(source, outcome.reason, outcome.detail)
            done.set_result(None)
            self._wake.set()
            return
        r = outcome.reading
        assert r is not None
        if outcome.verdict is DUPLICATE:
            # The persistent session's copy of what the live lane took is no resend by the
            # box: acknowledged as a duplicate, counted as nothing.
            if (r.key, r.seq) in self._lane_taken:
                del self._lane_taken[(r.key, r.seq)]
            else:
                self.counts["duplicate"] += 1
            if self._is_committed(r.key, r.seq):
                done.set_result(self.ack_payload(r.key, r.seq) if payload else COMMITTED)
                self._announce(r.key, r.seq)
            else:  # its first copy is still waiting for the commit: acknowledge with it
                self._dup_waiters.append((r.key, done, payload))
            return
        self.counts["accepted"] += 1
        if source.startswith(LIVE_SOURCE):
            self._lane_taken[(r.key, r.seq)] = None
            if len(self._lane_taken) > LANE_TAKEN_MAX:  # its copy never came: forget it
                del self._lane_taken[next(iter(self._lane_taken))]
        self.last_reading[r.key] = (now, r)
        accepted = new_accepted((r.key, r.seq, bytes(wire), r.time, now))
        self._queue.append((accepted, r, done, payload))
        self._wake.set()

    def _announce(self, box: bytes, near: int | None = None) -> None:
        for listener in self.ack_listeners:
            listener(box, near)

    # -- committing and sealing ------------------------------------------------------

    async def _commit_forever(self) -> None:
        interval = self.settings.spool.commit_interval_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            if interval:
                await asyncio.sleep(interval)  # let a group gather
            await self.flush()

    async def flush(self) -> None:
        """Commit everything queued, then resolve acknowledgements."""
        queue, self._queue = self._queue, []
        rejects, self._rejects = self._rejects, []
        if not queue and not rejects:
            return
        changed = await self.spool_call(self.spool.commit, [q[0] for q in queue], rejects)
        for box, ranges in changed.items():
            self.ranges[box] = ranges
            self.committed[box] = ranges[-1][1]
        lowest: dict[bytes, int] = {}  # the oldest seq committed now, per box: ack around it
        events: list[AlarmEvent] = []
        observe, forget = self.alarms.observe, self.verifier.committed
        for accepted, r, _, _ in queue:
            box = accepted.box
            forget(box, accepted.seq)
            if accepted.seq < lowest.get(box, 1 << 32):
                lowest[box] = accepted.seq
            # An unsynced box's clock is its own: alarm on our receive time instead.
            unsynced = r.flags & reading.FLAG_CLOCK_UNSYNCED
            t = accepted.gateway_time if unsynced else float(r.time)
            error = bool(r.flags & reading.FLAG_SENSOR_ERROR)
            events += observe(
                self._device_id(box),
                t,
                None if error else r.temperature / 100,
                error,
                received_s=accepted.gateway_time,
            )
        payloads: dict[bytes, bytes] = {}  # one ack per box for all its readings committed now
        for accepted, _, done, payload in queue:
            if not done.done():
                box = accepted.box
                if not payload:
                    done.set_result(COMMITTED)
                    continue
                if box not in payloads:
                    payloads[box] = self.ack_payload(box, lowest[box])
                done.set_result(payloads[box])
        waiting, self._dup_waiters = self._dup_waiters, []
        for box, done, payload in waiting:
            if box in self.ranges and not done.done():
                done.set_result(self.ack_payload(box, lowest.get(box)) if payload else COMMITTED)
        for box, seq in lowest.items():
            self._announce(box, seq)
        await self._alarm_events(events)

    async def seal_due(self, now: float | None = None) -> int:
        """Seal batches while enough readings wait (count) or the oldest is old enough (age).
        Return how many batches were sealed.

        Up to SEAL_AT_ONCE batches per trip to the spool thread: during a drain every await
        costs an event-loop iteration that is busy with thousands of messages, and two per
        batch let unsealed readings pile up by the hundred thousand (bench/RESULTS.md,
        issue 13 part 3); a bound, so commits (acks) wait for at most that many seals."""
        sealed = 0
        while True:
            headers = await self.spool_call(self._seal_some, now, SEAL_AT_ONCE)
            for header in headers:
                log.info(
                    "sealed batch %d: %d readings, root %s",
                    header.seq,
                    header.count,
                    header.merkle_root.hex()[:16],
                )
            sealed += len(headers)
            if len(headers) < SEAL_AT_ONCE:
                return sealed

    def _seal_some(self, now: float | None, at_most: int) -> list[BatchHeader]:
        """Seal up to `at_most` due batches (see seal_due), on the spool thread."""
        limits = self.settings.batch
        headers: list[BatchHeader] = []
        while len(headers) < at_most:
            count, oldest = self.spool.unsealed()
            age = (now or time.time()) - oldest if oldest is not None else 0.0
            if count == 0 or (count < limits.max_readings and age < limits.max_age_s):
                break
            header = self.spool.seal(self.secret, limits.max_readings)
            if header is None:
                break
            headers.append(header)
        return headers

    async def _seal_forever(self) -> None:
        tick = min(1.0, self.settings.batch.max_age_s / 4)
        while True:
            await asyncio.sleep(tick)
            await self.seal_due()
            await self.check_spool_size()
            await self._alarm_events(self.alarms.tick(time.time()))
            await self.status_reporter.tick(time.time())
            every = max(ALARM_SAVE_S, ALARM_SAVE_SHARE * self._alarm_save_s)
            if time.monotonic() - self._alarms_saved > every:
                self.save_alarms()

    async def check_spool_size(self) -> None:
        """Apply the disk policy: prune uploaded readings when needed; above warn_fraction
        of the limit raise the site's "spool nearly full" alarm; above the limit stop
        accepting, so boxes keep (and later resend) their unacknowledged readings."""
        limits = self.settings.spool
        size = await self.spool_call(self.spool.size_bytes)
        if size > limits.warn_fraction * limits.max_bytes:
            await self.spool_call(self.spool.prune, limits.keep_uploaded_s)
            size = await self.spool_call(self.spool.size_bytes)
        nearly = size > limits.warn_fraction * limits.max_bytes
        if nearly != self.spool_nearly_full:
            self.spool_nearly_full = nearly
            state = "raised" if nearly else "cleared"
            log.log(
                logging.ERROR if nearly else logging.INFO,
                "alarm spool %s: %d of %d bytes",
                state,
                size,
                limits.max_bytes,
            )
            body = {"alarm": "spool", "state": state, "bytes": size, "max_bytes": limits.max_bytes}
            drafts = [event.Draft(time.time(), event.SITE_ALARM, body)]
            await self.spool_call(self.spool.add_events, self.secret, drafts)
            for listener in self.alarm_listeners:
                listener([])
        full = size > limits.max_bytes
        if full == self.accepting:
            self.accepting = not full
            log.error(
                "spool %s its limit (%d of %d bytes): %s",
                "over" if full else "back under",
                size,
                limits.max_bytes,
                "boxes keep their readings until it drains" if full else "accepting again",
            )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(max(GC_YOUNG_THRESHOLD, self._gc_threshold[0]), *self._gc_threshold[1:])
        self._tasks = [
            asyncio.create_task(self._commit_forever(), name="commit"),
            asyncio.create_task(self._seal_forever(), name="seal"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self.verify_pool.judged()
        self.verify_pool.close()
        await self.flush()
        self.reject_log.flush()
        self.save_alarms()
        self._thread.shutdown(wait=True)
        self._reader.close()
        gc.set_threshold(*self._gc_threshold)

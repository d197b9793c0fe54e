"""The gateway core: verify, spool, acknowledge, seal. Transports (MQTT, BLE) hand every
message to `Gateway.receive`; nothing here knows how a reading arrived.

    receive() -> verify -> queue --(group commit on the spool thread)--> acks due -> seal

A reading is acknowledged only after the transaction holding it has committed: receive()
returns a future that resolves to the box's ack payload (device/ack.py) at that moment,
and boxes whose acknowledgement changed are announced to `on_ack` listeners (the MQTT
ingest publishes them). Commits are grouped (settings.spool.commit_interval_s) for
throughput; acknowledgements always follow their commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

from device import ack, reading, schnorr, topics
from device.flash import write_atomic
from gateway.alarms import AlarmEngine, AlarmEvent, AlarmProfile
from gateway.ratelog import RateLimitedLog
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.spool import Accepted, Rejected, Spool
from gateway.verify import Verdict, Verifier

log = logging.getLogger("pharmasync.gateway")
T = TypeVar("T")
AckListener = Callable[[bytes, bytes], None]  # (box key, ack payload)
AlarmListener = Callable[[list[AlarmEvent]], None]
ALARM_SAVE_S = 30.0  # persist the alarm engine's state this often (and at stop)


class Gateway:
    """Verifies, spools, acknowledges and seals readings (see the module docstring)."""

    def __init__(self, settings: Settings, registry: Registry, spool: Spool, secret: bytes) -> None:
        self.settings = settings
        self.registry = registry
        self.spool = spool
        self.secret = secret
        self.key = schnorr.pubkey(secret)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self.committed: dict[bytes, int] = spool.last_seqs()
        self.verifier = Verifier(registry, settings.verify, dict(self.committed), self._stored)
        self.counts: Counter[str] = Counter()  # accepted, duplicate, and each reject reason
        self.rejects_by_box: dict[bytes, Counter[str]] = {}
        self.reject_log = RateLimitedLog(log)  # bounded lines; self.counts stay exact
        self.last_reading: dict[bytes, tuple[float, Any]] = {}  # box -> (when, decoded)
        self.ack_listeners: list[AckListener] = []
        self.accepting = True  # False while the spool is over its size limit
        self.spool_nearly_full = False  # above warn_fraction of the limit: a site alarm
        self._queue: list[tuple[Accepted, reading.Reading, asyncio.Future[bytes | None]]] = []
        self._rejects: list[Rejected] = []
        self._dup_waiters: list[tuple[bytes, asyncio.Future[bytes | None]]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._acks: dict[bytes, tuple[int, bytes]] = {}  # box -> (seq, ack payload)
        # Alarms are kept per box (a zone's boxes need not arrive in time order); the
        # events name the box's zone and label. State survives restarts in alarms.json.
        self.alarm_listeners: list[AlarmListener] = []
        self._alarm_file = settings.data_dir / "alarms.json"
        self.alarms = self._load_alarms()
        self._alarms_saved = time.monotonic()

    def _profile(self, device_id: str) -> AlarmProfile:
        box = next((b for b in self.registry.all() if b.device_id == device_id), None)
        name = box.profile if box is not None else "default"
        return self.settings.alarms.get(name, self.settings.alarms["default"])

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
        write_atomic(str(self._alarm_file), json.dumps(self.alarms.snapshot()))
        self._alarms_saved = time.monotonic()

    async def _alarm_events(self, events: list[AlarmEvent]) -> None:
        """Log, queue for the cloud and announce alarm events."""
        if not events:
            return
        for ev in events:
            level = logging.WARNING if ev.state == "raised" else logging.INFO
            log.log(level, "alarm %s %s for box %s: %s", ev.kind, ev.state, ev.zone, ev.detail)
        await self.spool_call(
            self.spool.add_events, [(e.time_s, "alarm", e.to_json()) for e in events]
        )
        for listener in self.alarm_listeners:
            listener(events)
        self.save_alarms()

    async def spool_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a spool method on the spool's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _stored(self, box: bytes, seq: int) -> bytes | None:
        return await self.spool_call(self.spool.stored, box, seq)

    def ack_payload(self, box: bytes) -> bytes:
        """The acknowledgement for a box: its highest committed seq, signed if configured.
        Memoised per (box, seq): one signature per box per commit, not per reading."""
        seq = self.committed[box]
        cached = self._acks.get(box)
        if cached is None or cached[0] != seq:
            payload = (
                ack.encode(seq, box, self.secret) if self.settings.sign_acks else ack.encode(seq)
            )
            cached = self._acks[box] = (seq, payload)
        return cached[1]

    # -- receiving -------------------------------------------------------------------

    async def receive(
        self, wire: bytes, source: str, topic_id: str | None = None
    ) -> asyncio.Future[bytes | None]:
        """Verify a message and queue it; return a future resolving to the box's ack payload
        once it is committed (None if it was rejected). Never raises for bad input."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes | None] = loop.create_future()
        now = time.time()
        if not self.accepting:
            # Over the spool limit: leave the reading with its box, which keeps it.
            self.counts["spool full"] += 1
            done.set_result(None)
            return done
        outcome = await self.verifier.check(wire, now, topic_id)
        if outcome.verdict is Verdict.REJECT:
            self.counts[outcome.reason] += 1
            if outcome.reading is not None or outcome.reason in ("bad signature", "stale seq"):
                key = bytes(wire[1:33])
                self.rejects_by_box.setdefault(key, Counter())[outcome.reason] += 1
            self._rejects.append(Rejected(source, outcome.reason, outcome.detail, bytes(wire), now))
            self.reject_log(source, outcome.reason, outcome.detail)
            done.set_result(None)
            self._wake.set()
            return done
        r = outcome.reading
        assert r is not None
        if outcome.verdict is Verdict.DUPLICATE:
            self.counts["duplicate"] += 1
            if r.key in self.committed and self.committed[r.key] >= r.seq:
                done.set_result(self.ack_payload(r.key))
                self._announce(r.key)
            else:  # its first copy is still waiting for the commit: acknowledge with it
                self._dup_waiters.append((r.key, done))
            return done
        self.counts["accepted"] += 1
        self.last_reading[r.key] = (now, r)
        self._queue.append((Accepted(r.key, r.seq, bytes(wire), r.time, now), r, done))
        self._wake.set()
        return done

    def _announce(self, box: bytes) -> None:
        payload = self.ack_payload(box)
        for listener in self.ack_listeners:
            listener(box, payload)

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
        await self.spool_call(self.spool.commit, [a for a, _, _ in queue], rejects)
        boxes = set()
        events: list[AlarmEvent] = []
        for accepted, r, _ in queue:
            self.committed[accepted.box] = max(accepted.seq, self.committed.get(accepted.box, -1))
            self.verifier.committed(accepted.box, accepted.seq)
            boxes.add(accepted.box)
            # An unsynced box's clock is its own: alarm on our receive time instead.
            unsynced = r.flags & reading.FLAG_CLOCK_UNSYNCED
            t = accepted.gateway_time if unsynced else float(r.time)
            error = bool(r.flags & reading.FLAG_SENSOR_ERROR)
            events += self.alarms.observe(
                topics.device_id(r.key),
                t,
                None if error else r.temperature / 100,
                error,
                received_s=accepted.gateway_time,
            )
        for accepted, _, done in queue:
            if not done.done():
                done.set_result(self.ack_payload(accepted.box))
        waiting, self._dup_waiters = self._dup_waiters, []
        for box, done in waiting:
            if box in self.committed and not done.done():
                done.set_result(self.ack_payload(box))
        for box in boxes:
            self._announce(box)
        await self._alarm_events(events)

    async def seal_due(self, now: float | None = None) -> int:
        """Seal batches while enough readings wait (count) or the oldest is old enough (age).
        Return how many batches were sealed."""
        sealed = 0
        limits = self.settings.batch
        while True:
            count, oldest = await self.spool_call(self.spool.unsealed)
            age = (now or time.time()) - oldest if oldest is not None else 0.0
            if count == 0 or (count < limits.max_readings and age < limits.max_age_s):
                return sealed
            header = await self.spool_call(self.spool.seal, self.secret, limits.max_readings)
            if header is not None:
                sealed += 1
                log.info(
                    "sealed batch %d: %d readings, root %s",
                    header.seq,
                    header.count,
                    header.merkle_root.hex()[:16],
                )

    async def _seal_forever(self) -> None:
        tick = min(1.0, self.settings.batch.max_age_s / 4)
        while True:
            await asyncio.sleep(tick)
            await self.seal_due()
            await self.check_spool_size()
            await self._alarm_events(self.alarms.tick(time.time()))
            if time.monotonic() - self._alarms_saved > ALARM_SAVE_S:
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
            body = {"kind": "spool", "state": state, "bytes": size, "max_bytes": limits.max_bytes}
            await self.spool_call(self.spool.add_events, [(time.time(), "site-alarm", body)])
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
        await self.flush()
        self.reject_log.flush()
        self.save_alarms()
        self._thread.shutdown(wait=True)

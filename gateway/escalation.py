"""Alarm escalation: every raised alarm is sent along the configured escalation list, the last
level repeated, until someone acknowledges it or it clears; its state survives restarts.

    raised ──▶ level 1 ──after_s──▶ level 2 ... last level ──repeat_every_s──▶ again ...
       │                                                                        │
       ├── acknowledged (CLI, status page, signed ack) ─▶ stop; "acknowledged" to those told
       └── cleared (the engine) ───────────────────────▶ stop; "cleared" to those told

Everything lives in DATA_DIR/notify.sqlite, written before anything is sent, so a restart
(SIGKILL included) resumes where it was: a level already sent is not sent again, an alarm not
acknowledged keeps escalating. Deliveries are at-least-once: a gateway killed between a
successful send and its commit sends that one message again. After an outage the missed
repeats of the last level are not replayed: only the latest is sent (no message storm),
while every level that fell due is still sent once (each names other people).

A failed delivery is retried with doubling backoff (retry_min_s .. retry_max_s) until it is
sent, its alarm stops escalating, or give_up_after_s passes; each target is independent, so
a dead webhook never delays an e-mail. Nothing here needs the cloud.

The CLI (`pharmasync gateway alarms`) opens the same file from another process: its acks
are picked up by the running gateway at its next tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from gateway import alarm_ack, event, notify
from gateway.alarms import AlarmEvent, AlarmProfile, AlarmState
from gateway.registry import Registry
from gateway.settings import Settings

log = logging.getLogger("pharmasync.gateway.escalation")
ACK_MAX_FUTURE_S = 300  # a signed ack may be dated this far ahead of the gateway's clock
EventSink = Callable[[event.Draft], Awaitable[None]]  # a gateway event for the cloud

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id TEXT PRIMARY KEY,        -- 8 hex: what people type to acknowledge
    zone TEXT NOT NULL,         -- the engine's zone: the box's device id
    kind TEXT NOT NULL,
    since_s REAL NOT NULL,      -- reading time it was raised at
    raised_at REAL NOT NULL,    -- gateway clock: escalation counts from here
    value_c REAL,
    detail TEXT NOT NULL,
    cleared_at REAL,
    acked_at REAL,
    acked_by TEXT,
    acked_via TEXT,
    cleared_done INTEGER NOT NULL DEFAULT 0,  -- "cleared" notices scheduled
    acked_done INTEGER NOT NULL DEFAULT 0     -- "acknowledged" notices scheduled, event queued
);
CREATE TABLE IF NOT EXISTS deliveries (
    alarm TEXT NOT NULL REFERENCES alarms(id),
    step TEXT NOT NULL,         -- L<level>, R<repeat>, cleared, acknowledged
    target TEXT NOT NULL,       -- a name of [notify.targets]
    notice TEXT NOT NULL,       -- raised | repeat | cleared | acknowledged
    level INTEGER NOT NULL,
    due_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | cancelled | gave up
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    sent_at REAL,
    last_error TEXT,
    PRIMARY KEY (alarm, step, target)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state, next_try);
CREATE TABLE IF NOT EXISTS signed_acks (
    digest BLOB PRIMARY KEY,    -- alarm_ack.SignedAck.digest(): replays are refused
    alarm TEXT NOT NULL,
    key TEXT NOT NULL,
    by TEXT NOT NULL,
    at INTEGER NOT NULL,
    applied_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class AckResult:
    """What became of an acknowledgement: `ok`, and `reason` ("acknowledged" or why not)."""

    ok: bool
    reason: str
    alarm: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return self.reason + (f": {self.detail}" if self.detail else "")


def alarm_id(gateway_key: bytes, zone: str, kind: str, since_s: float, salt: int = 0) -> str:
    """The alarm's id: 8 hex of SHA-256 over gateway, zone, kind, start (and a collision salt);
    the same alarm gets the same id after a restart, another gateway's alarms other ids."""
    text = f"{zone}\x00{kind}\x00{since_s!r}\x00{salt}".encode()
    return hashlib.sha256(gateway_key + text).hexdigest()[: alarm_ack.ALARM_ID_HEX]


def describe(alarm: sqlite3.Row) -> str:
    """Where an alarm stands, for people: "escalating", "acknowledged by NAME (via)" or
    "cleared, not acknowledged"."""
    if alarm["acked_at"] is not None:
        return f"acknowledged by {alarm['acked_by']} ({alarm['acked_via']})"
    return "escalating" if alarm["cleared_at"] is None else "cleared, not acknowledged"


class AlarmStore:
    """notify.sqlite: alarms, their deliveries and the signed acks applied (SCHEMA)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # few rows; each one is a promise to a person
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def alarm(self, alarm: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM alarms WHERE id = ?", (alarm,)).fetchone()

    def alarms(self, limit: int = 100) -> list[sqlite3.Row]:
        """The escalating alarms first, then the most recent others."""
        return self.db.execute(
            "SELECT * FROM alarms ORDER BY (cleared_at IS NULL AND acked_at IS NULL) DESC,"
            " raised_at DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def deliveries(self, alarm: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM deliveries WHERE alarm = ? ORDER BY due_at, target", (alarm,)
        ).fetchall()

    def ack(self, alarm: str, by: str, via: str, now: float) -> AckResult:
        """Record that `by` acknowledged `alarm` (via "cli", "status page" or a signed ack)."""
        row = self.alarm(alarm)
        if row is None:
            return AckResult(False, "unknown alarm", alarm, f"no alarm {alarm} at this gateway")
        if row["acked_at"] is not None:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row["acked_at"]))
            return AckResult(False, "already acknowledged", alarm, f"by {row['acked_by']}, {when}")
        self.db.execute(
            "UPDATE alarms SET acked_at = ?, acked_by = ?, acked_via = ? WHERE id = ?",
            (now, by, via, alarm),
        )
        return AckResult(True, "acknowledged", alarm, f"by {by} ({via})")

    def apply_signed(self, signed: alarm_ack.SignedAck, now: float) -> AckResult:
        """Record a checked signed ack and acknowledge its alarm, in one transaction."""
        a = signed.ack
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            seen = "SELECT 1 FROM signed_acks WHERE digest = ?"
            if self.db.execute(seen, (signed.digest(),)).fetchone():
                return AckResult(False, "replayed", a.alarm, "this signed ack was applied before")
            result = self.ack(a.alarm, a.by, f"signed by {signed.key.hex()[:16]}", now)
            if result.ok:
                self.db.execute(
                    "INSERT INTO signed_acks VALUES (?, ?, ?, ?, ?, ?)",
                    (signed.digest(), a.alarm, signed.key.hex(), a.by, a.at, now),
                )
            return result


class Escalation:
    """Sends every raised alarm along settings.notify's escalation list (module docstring).

    Hook on_events() to Gateway.alarm_listeners and run() as a task; ack() and
    apply_signed_ack() may be called at any time, from this process or another.
    """

    def __init__(
        self,
        settings: Settings,
        gateway_key: bytes,
        registry: Registry,
        store: AlarmStore,
        events: EventSink | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.notify
        self.gateway_key = gateway_key
        self.registry = registry
        self.store = store
        self.events = events  # where "acknowledged" gateway events go (the spool, for the cloud)
        self.sent: Counter[str] = Counter()  # by target name
        self.failed: Counter[str] = Counter()  # failed attempts, by target name
        self.gave_up: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # signed acks refused, by reason
        self._wake = asyncio.Event()
        self._inflight: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._outbox: list[event.Draft] = []  # gateway events for `events`
        # The profile a zone alarms on now (the gateway's AlarmEngine.profile: its own and
        # its lots', gateway/lots_follow.py); None, or a zone it has not seen: the box's own.
        self.profile_of: Callable[[str], AlarmProfile | None] | None = None

    # -- what comes in ---------------------------------------------------------------

    def on_events(self, events: list[AlarmEvent]) -> None:
        """Record raised and cleared alarms (a Gateway alarm listener): durable on return."""
        now = time.time()
        for ev in events:
            if ev.state == "raised":
                self._raise(ev.zone, ev.kind, ev.time_s, ev.value_c, ev.detail, now)
            else:
                self.store.db.execute(
                    "UPDATE alarms SET cleared_at = ? WHERE zone = ? AND kind = ?"
                    " AND cleared_at IS NULL",
                    (now, ev.zone, ev.kind),
                )
        if events:
            self._wake.set()

    def adopt(self, active: list[AlarmState]) -> None:
        """At start: take on the engine's active alarms this store does not know yet (raised
        before notification was configured, or while the store was lost)."""
        now = time.time()
        for a in active:
            self._raise(a.zone, a.kind, a.since_s, a.value_c, a.detail, now)

    def _raise(
        self, zone: str, kind: str, since: float, value: float | None, detail: str, now: float
    ) -> None:
        db = self.store.db
        open_ = "SELECT 1 FROM alarms WHERE zone = ? AND kind = ? AND cleared_at IS NULL"
        if db.execute(open_, (zone, kind)).fetchone():
            return  # the same alarm, raised again after a restart lost the engine's state
        for salt in range(100):
            new = alarm_id(self.gateway_key, zone, kind, since, salt)
            if self.store.alarm(new) is None:
                break
        db.execute(
            "INSERT INTO alarms (id, zone, kind, since_s, raised_at, value_c, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (new, zone, kind, since, now, value, detail),
        )
        log.warning("alarm %s: %s %s raised; escalating", new, kind, zone)

    def ack(self, alarm: str, by: str, via: str = "cli") -> AckResult:
        """Acknowledge `alarm` for `by`: escalation stops at the next tick."""
        result = self.store.ack(alarm, by, via, time.time())
        if result.ok:
            self._wake.set()
        return result

    def apply_signed_ack(
        self, wire: bytes, now: float | None = None, log_keys: Collection[bytes] = ()
    ) -> AckResult:
        """Check and apply a signed acknowledgement (gateway/alarm_ack.py); never raises.

        The authorised keys are [notify] ack_keys and `log_keys`, those the log's owners
        authorised for this site (gateway/ack_relay.py passes them for the acks the cloud
        relays). Refused, with the reason counted in `refused`: "malformed", "bad
        signature", "wrong gateway", "unauthorised key", "dated in the future", "replayed",
        "unknown alarm", "already acknowledged".
        """
        now = time.time() if now is None else now
        try:
            signed = alarm_ack.decode(wire)
        except alarm_ack.AckError as e:
            return self._refuse(AckResult(False, e.reason, None, e.detail))
        a = signed.ack
        if a.gateway != self.gateway_key:
            detail = f"names gateway {a.gateway.hex()[:16]}, this is {self.gateway_key.hex()[:16]}"
            return self._refuse(AckResult(False, "wrong gateway", a.alarm, detail))
        if signed.key not in self.config.ack_keys and signed.key not in log_keys:
            detail = f"key {signed.key.hex()} is in neither [notify] ack_keys nor the log's"
            return self._refuse(AckResult(False, "unauthorised key", a.alarm, detail))
        if a.at > now + ACK_MAX_FUTURE_S:
            detail = f"at {a.at} is more than {ACK_MAX_FUTURE_S} s ahead of {int(now)}"
            return self._refuse(AckResult(False, "dated in the future", a.alarm, detail))
        result = self.store.apply_signed(signed, now)
        if not result.ok:
            return self._refuse(result)
        self._wake.set()
        return result

    def _refuse(self, result: AckResult) -> AckResult:
        self.refused[result.reason] += 1
        log.warning("signed alarm ack refused: %s", result)
        return result

    # -- what goes out ---------------------------------------------------------------

    def schedule(self, now: float) -> None:
        """Write the deliveries that are due at `now` (idempotent: each step once)."""
        db, levels = self.store.db, self.config.levels
        escalating = db.execute(
            "SELECT * FROM alarms WHERE cleared_at IS NULL AND acked_at IS NULL"
        ).fetchall()
        for a in escalating:
            elapsed = now - a["raised_at"]
            for i, level in enumerate(levels, 1):
                if level.after_s <= elapsed:
                    due = a["raised_at"] + level.after_s
                    self._add(a["id"], f"L{i}", level.notify, "raised", i, due, now)
            every = self.config.repeat_every_s
            if levels and every > 0 and elapsed >= levels[-1].after_s + every:
                n = int((elapsed - levels[-1].after_s) // every)
                due = a["raised_at"] + levels[-1].after_s + n * every
                self._add(a["id"], f"R{n}", levels[-1].notify, "repeat", len(levels), due, now)
                # A repeat still failing when the next falls due is superseded by it.
                db.execute(
                    "UPDATE deliveries SET state = 'cancelled', last_error = 'superseded'"
                    " WHERE alarm = ? AND notice = 'repeat' AND step != ? AND state = 'pending'",
                    (a["id"], f"R{n}"),
                )
        for column, notice in (("acked", "acknowledged"), ("cleared", "cleared")):
            stopped = db.execute(
                f"SELECT * FROM alarms WHERE {column}_at IS NOT NULL AND {column}_done = 0"
            ).fetchall()
            for a in stopped:
                self._stop(a, notice, now)

    def _add(
        self,
        alarm: str,
        step: str,
        targets: tuple[str, ...],
        notice: str,
        level: int,
        due: float,
        now: float,
    ) -> None:
        """Schedule `notice` of `alarm` to each target for `step`, once (a step is a key)."""
        self.store.db.executemany(
            "INSERT OR IGNORE INTO deliveries (alarm, step, target, notice, level, due_at,"
            " next_try) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(alarm, step, t, notice, level, due, now) for t in targets],
        )

    def _stop(self, a: sqlite3.Row, notice: str, now: float) -> None:
        """An alarm acknowledged or cleared: cancel what was not sent, tell those who were."""
        db = self.store.db
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE deliveries SET state = 'cancelled', last_error = ? WHERE alarm = ?"
                " AND notice IN ('raised', 'repeat') AND state = 'pending'",
                (notice, a["id"]),
            )
            told = db.execute(
                "SELECT DISTINCT target FROM deliveries WHERE alarm = ? AND state = 'sent'"
                " AND notice IN ('raised', 'repeat')",
                (a["id"],),
            ).fetchall()
            self._add(a["id"], notice, tuple(t["target"] for t in told), notice, 0, now, now)
            column = "acked_done" if notice == "acknowledged" else "cleared_done"
            db.execute(f"UPDATE alarms SET {column} = 1 WHERE id = ?", (a["id"],))
        if notice == "acknowledged":
            log.info("alarm %s acknowledged by %s (%s)", a["id"], a["acked_by"], a["acked_via"])
            draft = event.alarm_draft(
                "acknowledged",
                a["kind"],
                a["zone"],
                a["acked_at"],
                detail=f"alarm {a['id']} via {a['acked_via']}",
            )
            draft.body["by"] = event.clip(a["acked_by"])
            self._outbox.append(draft)

    def launch(self, now: float) -> None:
        """Start an attempt for every pending delivery whose time has come."""
        db = self.store.db
        give_up = now - self.config.give_up_after_s
        for row in db.execute(
            "SELECT * FROM deliveries WHERE state = 'pending' AND due_at < ?", (give_up,)
        ).fetchall():
            self.gave_up[row["target"]] += 1
            log.error(
                "alarm %s: gave up on %s to %s after %d attempts: %s",
                row["alarm"], row["notice"], row["target"], row["attempts"], row["last_error"],
            )  # fmt: skip
        db.execute(
            "UPDATE deliveries SET state = 'gave up' WHERE state = 'pending' AND due_at < ?",
            (give_up,),
        )
        due = db.execute(
            "SELECT * FROM deliveries WHERE state = 'pending' AND next_try <= ?"
            " ORDER BY due_at, alarm, target",
            (now,),
        ).fetchall()
        for row in due:
            key = self._key(row)
            if key not in self._inflight:
                task = asyncio.create_task(self._attempt(row), name=f"notify {key}")
                self._inflight[key] = task
                task.add_done_callback(partial(self._forget, key))

    def _forget(self, key: tuple[str, str, str], _: asyncio.Task[None]) -> None:
        self._inflight.pop(key, None)

    @staticmethod
    def _key(row: sqlite3.Row) -> tuple[str, str, str]:
        return (row["alarm"], row["step"], row["target"])

    async def _attempt(self, row: sqlite3.Row) -> None:
        """Try one delivery once; record sent, or the failure and when to retry."""
        alarm, step, target = self._key(row)
        a = self.store.alarm(alarm)
        if a is None:
            return
        if row["notice"] in ("raised", "repeat") and a["acked_at"] is not None:
            return  # acknowledged since it was scheduled: schedule() cancels it
        notice = self.notice(a, row["notice"], row["level"])
        where = self.config.targets.get(target, "")
        try:
            if where.startswith("mailto:"):
                sender = self.config.mail_from or f"pharmasync-gateway@{self.settings.site}"
                message = notify.email_message(notice, sender, where.removeprefix("mailto:"))
                await notify.send_email(self.config, message)
            elif where:
                assert self._session is not None, "run() owns the HTTP session"
                await notify.post_webhook(self._session, where, notice.to_json())
            else:
                raise notify.DeliveryError(f"target {target!r} is no longer configured")
        except notify.DeliveryError as e:
            attempts = row["attempts"] + 1
            backoff = min(self.config.retry_max_s, self.config.retry_min_s * 2 ** (attempts - 1))
            self.failed[target] += 1
            log.warning(
                "alarm %s: %s to %s failed (attempt %d, next in %.0f s): %s",
                alarm, row["notice"], target, attempts, backoff, e,
            )  # fmt: skip
            self.store.db.execute(
                "UPDATE deliveries SET attempts = ?, next_try = ?, last_error = ?"
                " WHERE alarm = ? AND step = ? AND target = ? AND state = 'pending'",
                (attempts, time.time() + backoff, str(e)[:300], alarm, step, target),
            )
            return
        self.sent[target] += 1
        log.info("alarm %s: %s sent to %s", alarm, row["notice"], target)
        self.store.db.execute(
            "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = ?,"
            " last_error = NULL WHERE alarm = ? AND step = ? AND target = ?",
            (time.time(), alarm, step, target),
        )

    def notice(self, a: sqlite3.Row, kind: str, level: int) -> notify.Notice:
        """The message about alarm row `a`: box label, zone and limits from the registry."""
        box = next((b for b in self.registry.all() if b.device_id == a["zone"]), None)
        profiles = self.settings.alarms
        applied = self.profile_of(a["zone"]) if self.profile_of is not None else None
        profile = applied or profiles.get(box.profile if box else "default", profiles["default"])
        status = self.settings.status
        url = self.config.status_url or (
            f"http://{status.host}:{status.port}/" if status.port and self.config.ack_token else ""
        )
        return notify.Notice(
            notice=kind,  # type: ignore[arg-type]
            alarm_id=a["id"],
            site=self.settings.site,
            gateway_key=self.gateway_key.hex(),
            kind=a["kind"],
            box_id=a["zone"],
            label=(box.label if box else "") or a["zone"],
            zone=box.zone if box else "",
            value_c=a["value_c"],
            detail=a["detail"],
            since_s=a["since_s"],
            low_c=profile.low_c,
            high_c=profile.high_c,
            level=level,
            levels=len(self.config.levels),
            at_s=time.time(),
            ack_by=a["acked_by"] or "",
            ack_command=f"pharmasync gateway alarms --config gateway.toml ack {a['id']} --by NAME",
            status_url=url,
        )

    async def run(self) -> None:
        """Schedule and deliver until cancelled; in-flight attempts are cancelled with it."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            try:
                while True:
                    now = time.time()
                    self.schedule(now)
                    self.launch(now)
                    outbox, self._outbox = self._outbox, []
                    if self.events is not None:
                        for draft in outbox:
                            await self.events(draft)
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                    # cancellation that coincides with the wake-up (CPython gh-86296).
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self.config.tick_s):
                            await self._wake.wait()
                    self._wake.clear()
            finally:
                tasks = list(self._inflight.values())
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with suppress(asyncio.CancelledError):
                        await task
                self._session = None

    # -- what the status page shows --------------------------------------------------

    def snapshot(self, limit: int = 50) -> dict[str, Any]:
        """Alarms with their deliveries, counters, and what is pending, as JSON-able data."""
        alarms = []
        for a in self.store.alarms(limit):
            rows = self.store.deliveries(a["id"])
            alarms.append(
                {k: a[k] for k in ("id", "zone", "kind", "since_s", "raised_at", "value_c")}
                | {k: a[k] for k in ("detail", "cleared_at", "acked_at", "acked_by", "acked_via")}
                | {
                    "escalating": a["cleared_at"] is None and a["acked_at"] is None,
                    "state": describe(a),
                    "told": sorted({d["target"] for d in rows if d["state"] == "sent"}),
                    "deliveries": [
                        {k: d[k] for k in ("step", "target", "notice", "state", "attempts")}
                        | {"sent_at": d["sent_at"], "last_error": d["last_error"]}
                        for d in rows
                    ],
                }
            )
        (pending,) = self.store.db.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'pending'"
        ).fetchone()
        acks = self.store.db.execute(
            "SELECT CASE WHEN acked_via LIKE 'signed%' THEN 'signed' ELSE acked_via END AS via,"
            " count(*) FROM alarms WHERE acked_at IS NOT NULL GROUP BY via"
        ).fetchall()
        return {
            "alarms": alarms,
            "sent": dict(self.sent),
            "failed": dict(self.failed),
            "gave_up": dict(self.gave_up),
            "pending": pending,
            "acks": {via: n for via, n in acks},
            "refused_acks": dict(self.refused),
            "levels": len(self.config.levels),
            "ack_on_page": bool(self.config.ack_token),
        }

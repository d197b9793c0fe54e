"""Zero-trust checks on every message that claims to be a reading.

In order, each failure with its own reason (counted, and kept in quarantine):

    <field>            malformed: the reading decoder names the field (length, version, ...)
    unregistered       the box key is not in the registry
    topic mismatch     the MQTT topic names another box than the reading's key
    bad signature      the BIP-340 signature does not verify for the box key
    seq reused         a valid signature over different bytes for a seq already stored
    stale seq          older than the box's newest committed reading, and not a duplicate
    time in future     a synced box's time is ahead of ours by more than max_future_s
    time too old       a synced box's time is behind ours by more than max_age_s

An exact copy of a stored reading is a *duplicate*: counted, not stored again, and
acknowledged again (the box resends what it has not seen acknowledged). Boxes with an
unsynced clock skip the time checks; the spool records our receive time beside theirs.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from device import reading, schnorr, topics
from gateway.registry import Box, Registry
from gateway.settings import VerifySettings


class Verdict(enum.Enum):
    ACCEPT = "accept"  # new: store it, then acknowledge
    DUPLICATE = "duplicate"  # already stored: acknowledge again
    REJECT = "reject"  # quarantine it with the reason


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    detail: str = ""
    reading: reading.Reading | None = None
    box: Box | None = None


Stored = Callable[[bytes, int], Awaitable[bytes | None]]


class Verifier:
    """Checks readings against the registry and the boxes' committed sequence numbers.

    `last_seq` is the highest seq accepted per box, including readings accepted but not
    yet committed, so a reading arriving twice before its commit is still a duplicate.
    """

    def __init__(
        self,
        registry: Registry,
        settings: VerifySettings,
        last_seq: dict[bytes, int],
        stored: Stored,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.last_seq = last_seq
        self.stored = stored
        self.pending: dict[tuple[bytes, int], bytes] = {}  # accepted, not yet committed

    async def check(self, wire: bytes, now: float, topic_id: str | None = None) -> Outcome:
        """Return the verdict on `wire`, received at `now` (Unix seconds), on a topic naming
        `topic_id` (None over BLE). Never raises for bad input."""
        try:
            r = reading.decode(wire)
        except reading.ReadingError as e:
            return Outcome(Verdict.REJECT, e.field, str(e))
        box = self.registry.get(r.key)
        if box is None:
            return Outcome(Verdict.REJECT, "unregistered", f"box {r.key.hex()} is not registered")
        if topic_id is not None and topic_id != topics.device_id(r.key):
            return Outcome(
                Verdict.REJECT,
                "topic mismatch",
                f"topic names {topic_id}, reading is from {topics.device_id(r.key)}",
            )
        if not schnorr.verify(r.key, reading.message(wire), r.signature):
            return Outcome(Verdict.REJECT, "bad signature", f"seq {r.seq} of {box.device_id}")
        last = self.last_seq.get(r.key, -1)
        if r.seq <= last:
            earlier = self.pending.get((r.key, r.seq)) or await self.stored(r.key, r.seq)
            if earlier == wire:
                return Outcome(Verdict.DUPLICATE, "duplicate", "", r, box)
            if earlier is not None:
                return Outcome(
                    Verdict.REJECT, "seq reused", f"seq {r.seq} signed twice by {box.device_id}"
                )
            return Outcome(Verdict.REJECT, "stale seq", f"got seq {r.seq}, newest is {last}")
        if not r.flags & reading.FLAG_CLOCK_UNSYNCED:
            ahead = r.time - now
            if ahead > self.settings.max_future_s:
                return Outcome(
                    Verdict.REJECT,
                    "time in future",
                    f"got {r.time}, {ahead:.0f} s ahead, want <= {self.settings.max_future_s}",
                )
            if -ahead > self.settings.max_age_s:
                return Outcome(
                    Verdict.REJECT,
                    "time too old",
                    f"got {r.time}, {-ahead:.0f} s old, want <= {self.settings.max_age_s}",
                )
        self.last_seq[r.key] = r.seq
        self.pending[(r.key, r.seq)] = wire
        return Outcome(Verdict.ACCEPT, "", "", r, box)

    def committed(self, box: bytes, seq: int) -> None:
        """Forget the pending copy of a reading once the spool holds it."""
        self.pending.pop((box, seq), None)

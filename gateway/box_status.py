"""The periodic per-box status event (gateway/event.py, kind box-status): every
[events] status_interval_s, one signed event per registered box saying when the gateway
last accepted a reading from it, its highest committed seq, its backlog and battery where
it reports them, and the messages refused in its name since the previous status, by reason.

Cheap by design: it reads counters the gateway keeps anyway (Gateway.last_reading,
committed, rejects_by_box) and one dict of the boxes' own status reports, and queues all
the boxes' events in one spool transaction. It names boxes and zones, never a lot.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from device import reading
from gateway import event

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger("pharmasync.gateway.status_events")


class BoxStatusReporter:
    """Queues box-status events for a gateway every `interval_s` (0: never)."""

    def __init__(self, gateway: Gateway, interval_s: float) -> None:
        self.gateway = gateway
        self.interval_s = interval_s
        # A box's own status report (its retained JSON status: backlog, battery_low, ...),
        # by box key, filled by the transport that reads it.
        self.reports: dict[bytes, dict[str, Any]] = {}
        self._rejects_then: dict[bytes, Counter[str]] = {}
        self._last: float | None = None  # when the last round was queued (None: not yet)

    def drafts(self, now: float) -> list[event.Draft]:
        """Return one box-status draft per registered box, and remember the reject counts
        they report, so the next round counts only newer rejects."""
        gw = self.gateway
        drafts = []
        for box in gw.registry.all():
            rejects = gw.rejects_by_box.get(box.key, Counter())
            since = rejects - self._rejects_then.get(box.key, Counter())
            self._rejects_then[box.key] = Counter(rejects)
            body: dict[str, Any] = {
                "box": box.key.hex(),
                "zone": event.clip(box.alarm_zone),
                "rejects": {
                    r[:64]: n
                    for r, n in since.most_common(event.MAX_COUNTS)
                    if r.isascii() and r.isprintable()
                },
            }
            if box.key in gw.committed:
                body["last_seq"] = gw.committed[box.key]
            seen = gw.last_reading.get(box.key)
            battery_low: bool | None = None
            if seen is not None:
                when, last = seen
                body["last_seen"] = int(when)
                battery_low = bool(last.flags & reading.FLAG_BATTERY_LOW)
            report = self.reports.get(box.key, {})
            backlog = report.get("backlog")
            if type(backlog) is int and 0 <= backlog <= event.MAX_INT:
                body["backlog"] = backlog
            if type(report.get("battery_low")) is bool:
                battery_low = report["battery_low"]
            if battery_low is not None:
                body["battery_low"] = int(battery_low)
            drafts.append(event.Draft(now, event.BOX_STATUS, body))
        return drafts

    async def tick(self, now: float) -> int:
        """Queue a round of box-status events if one is due; return how many were queued."""
        if not self.interval_s:
            return 0
        if self._last is None:
            self._last = now  # the first round one interval after start: counters settle
            return 0
        if now - self._last < self.interval_s:
            return 0
        self._last = now
        drafts = self.drafts(now)
        if not drafts:
            return 0
        gw = self.gateway
        signed = await gw.spool_call(gw.spool.add_events, gw.secret, drafts)
        log.debug("queued %d box-status events", len(signed))
        return len(signed)

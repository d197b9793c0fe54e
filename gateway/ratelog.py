"""Rate-limited log lines for refused input: the first refusal of each (source, reason) is
logged at once, later ones are counted and summarised, at most one line per interval per
(source, reason), with the count since the last line. The counters that matter (metrics,
quarantine) are kept elsewhere and stay exact; this only bounds the log. (Issue 10 §5: one
warning line per garbage message made 8.6 MB of log for 50,000 messages.)

    rejected from mqtt:pharmasync/v1/s/x/reading: length: got 4096 bytes, want 110
    rejected from mqtt:pharmasync/v1/s/x/reading: length: 1234 more in 60 s (last: got ...)

With an empty source the line reads `refused: <reason>: <detail>` (the cloud's refusals).
A sender can invent sources (any MQTT topic under the site's prefix), so distinct sources
are bounded too: past `max_keys` live keys, a new source is counted under "other sources".
Reasons are a small fixed set named in code. Used by the gateway (gateway/service.py) and
the cloud ledger (cloud/services/refusals.py); CPython only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

OTHER_SOURCES = "other sources"  # where sources past max_keys are counted
DEFAULT_INTERVAL_S = 60.0
DEFAULT_MAX_KEYS = 64


class RateLimitedLog:
    """Log refusals per (source, reason): the first at once, then one summary per interval.

    Intervals are global windows: at the end of each, every key with refusals not yet
    logged gets one summary line, and keys that were quiet for the whole window are
    forgotten (their next refusal is logged at once again). A window ends on the next
    refusal after it, on flush(), or by a timer on the running asyncio loop, so a burst's
    tail is logged even if nothing follows it.
    """

    def __init__(
        self,
        logger: logging.Logger,
        verb: str = "rejected",
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.verb = verb
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.level = level
        self.clock = clock
        self._window_start = clock()
        # (source, reason) -> [refusals since its last line, the last one's detail]
        self._pending: dict[tuple[str, str], list] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, source: str, reason: str, detail: str) -> None:
        """Note one refusal: log it now if its key is new, else count it for the summary."""
        now = self.clock()
        if now - self._window_start >= self.interval_s:
            self.flush()
        key = (source, reason)
        if key not in self._pending and len(self._pending) >= self.max_keys:
            key = (OTHER_SOURCES, reason)
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = [0, ""]
            self._write(key, detail, 1)
            return
        entry[0] += 1
        entry[1] = detail
        self._schedule(now)

    def flush(self) -> None:
        """End the current window: write a summary line for every key with refusals not
        yet logged, and forget the keys that were quiet."""
        now = self.clock()
        elapsed = now - self._window_start
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        quiet = []
        for key, entry in self._pending.items():
            count, detail = entry
            if count:
                self._write(key, f"{count} more in {elapsed:.0f} s (last: {detail})", count)
                entry[0] = 0
            else:
                quiet.append(key)
        for key in quiet:
            del self._pending[key]
        self._window_start = now

    def _write(self, key: tuple[str, str], text: str, count: int) -> None:
        source, reason = key
        where = f"{self.verb} from {source}" if source else self.verb
        self.logger.log(self.level, "%s: %s: %s", where, reason, text, extra={"refusals": count})

    def _schedule(self, now: float) -> None:
        """Make sure the window's summary is written when it ends (if a loop runs)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: written at the next refusal or flush()
        if self._timer is not None and self._timer_loop is loop:
            return
        self._timer_loop = loop  # (a timer left on a loop that has ended never fires)
        delay = max(0.0, self._window_start + self.interval_s - now)
        self._timer = loop.call_later(delay, self.flush)

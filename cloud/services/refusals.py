"""The services' one error type and their shared refusal counter.

Every service raises LedgerError (a gateway/refusal.py Refused: reason, detail, HTTP status)
for a request it refuses; only the API's error middleware turns it into a response. Refusals
of what clients send (batches, registry and configuration requests, events, alarm acks) go
through one Refusals counter: exact counts by reason for /metrics, and a rate-limited log
(gateway/ratelog.py) so that a flood of bad uploads makes a few lines, not one each.
"""

from __future__ import annotations

import logging

from cloud.storage.store import StoreConflict
from gateway.ratelog import RateLimitedLog
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger")


class LedgerError(Refused):
    """A refused request (gateway/refusal.py): the views answer it as problem+json."""


class Refusals:
    """Refused requests counted by reason (exact) and logged (rate-limited)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # by reason, for the metrics
        self.log = RateLimitedLog(log, "refused")  # bounded lines; the counts stay exact

    def refuse(self, reason: str, detail: str, status: int) -> LedgerError:
        """Count and log a refusal; return the LedgerError for the caller to raise."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.log("", reason, detail)
        return LedgerError(reason, detail, status)

    def of(self, error: Refused) -> LedgerError:
        """Count and log a domain module's refusal (its reason, detail and status) as
        refuse() does; return it as a LedgerError."""
        return self.refuse(error.reason, error.detail, error.status)

    def conflict(self, error: StoreConflict) -> LedgerError:
        """Count and log a write that lost a race in the store (409 with its reason)."""
        return self.refuse(error.reason, error.detail, 409)

    def flush(self) -> None:
        """Write the pending summary lines now (before the service stops)."""
        self.log.flush()

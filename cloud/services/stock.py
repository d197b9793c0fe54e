"""Stock and shortage (docs/contracts.md §5, "Stock and shortage (as built)"): each GTIN's
stock as the read policy lets a reader see it (cloud/contracts/policy.py `stock_access`),
from the stock index (cloud/contracts/stock.py) that follows the contract service's applied
changes in log order, rebuilt by replay at start; and the shortage alerts that index
derives, handed to the regulators' feeds (cloud/services/feeds.py) as the change that raised
them is. Raises LedgerError (cloud/services/refusals.py): 403 "participant" or "access",
404 "gtin".
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from cloud.contracts import auth, participants, policy
from cloud.contracts.engine import Applied, Forbidden
from cloud.contracts.stock import StockIndex
from cloud.services.contracts import ContractService
from cloud.services.feeds import FeedService
from cloud.services.shared import Shared
from gateway.refusal import Refused

PUBLIC = "public"  # the read matrix's row for a reader without a token


class StockService:
    """Stock per GTIN over the contract service's state (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService, feeds: FeedService) -> None:
        """Build the index empty: register after the feeds (a change's own notifications
        come first in a feed, its shortage alerts after them) and before contracts.load(),
        which feeds it every change replayed."""
        self.shared = shared
        self.contracts = contracts
        self.feeds = feeds
        self.index = StockIndex()
        contracts.listeners.append(self._applied)

    def _applied(self, index: int, applied: Applied) -> None:
        """Take in one change; deliver its shortage alerts as the change's own (same log
        index, same transaction id) to the feeds of the regulators of its own log position
        (Applied.regulators: a handover later in the same page of the log, followed before
        the listeners are told, does not redirect them)."""
        alerts = self.index.apply(applied, applied.regulators)
        if alerts:
            raised = Applied(applied.tx_id, {}, frozenset(), tuple(alerts), None, None)
            self.feeds.deliver(index, raised)

    async def _reader(self, reader: auth.Token | None) -> tuple[str | None, policy.StockAccess]:
        """Catch up with the log; return the reader's participant id (None: the public or
        a regulator, who holds nothing) and what it may see. Raises LedgerError 403."""
        await self.contracts.current()  # then no await: one state throughout
        try:
            if reader is None:
                return None, policy.stock_access(PUBLIC, Forbidden)
            who = participants.identify(self.contracts.state, reader.did)
            seen = policy.stock_access(who.role, Forbidden)
        except Refused as e:
            raise self.shared.refusals.of(e) from None
        return (who.id if seen.own else None), seen

    def _answer(
        self, gtin: str, who: str | None, seen: policy.StockAccess, now_ms: int
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"gtin": gtin}
        if seen.figures:
            answer["figures"] = self.index.figures(gtin, now_ms)
        if seen.own and who is not None:
            answer["own"] = self.index.own(gtin, who, now_ms)
        if seen.minimum:
            answer["shortage"] = self.index.shortage(gtin)
        answer["withheld"] = seen.withheld
        return answer

    async def stock(
        self, gtin: str, reader: auth.Token | None, now_ms: int | None = None
    ) -> dict[str, Any]:
        """Return the stock of `gtin` (a GTIN-14 checked by the caller) for `reader` (None:
        the public) at the log's latest state, the 30-day dispense window ending at `now_ms`
        (default: the clock). Raises LedgerError 403 "participant"/"access", 404 "gtin"
        (no lot of it was commissioned and no minimum is set, or one is but the reader
        may not see it: a minimum alone is compliance data)."""
        who, seen = await self._reader(reader)
        if not self.index.knows(gtin, seen.minimum):
            detail = f"no lot of GTIN {gtin} was commissioned"
            raise self.shared.refusals.refuse("gtin", detail, 404)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        head = self.contracts.head
        return {
            "state": head.to_json(),
            "as_of": now_ms,
            **self._answer(gtin, who, seen, now_ms),
        }

    async def all(
        self,
        reader: auth.Token | None,
        after: str | None,
        limit: int,
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """Return the stock of every GTIN `reader` may see after the GTIN `after` (None:
        from the first), at most `limit`, in GTIN order: every GTIN for a reader of the
        figures, else those of the lots in whose custody it has been; `next` is the `after`
        of the next page (None: no more). Raises LedgerError 403 as stock()."""
        who, seen = await self._reader(reader)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if seen.figures or who is None:
            known = self.index.gtins(seen.minimum)
        else:
            known = self.index.gtins_of(who)
        start = 0 if after is None else bisect.bisect_right(known, after)
        page = known[start : start + limit]
        more = start + limit < len(known)
        return {
            "state": self.contracts.head.to_json(),
            "as_of": now_ms,
            "gtins": [self._answer(g, who, seen, now_ms) for g in page],
            "next": page[-1] if more else None,
        }

"""Notification feeds (docs/contracts.md §5, "Feeds"): each participant's events
(cloud/contracts/feeds.py), derived from the contract service's applied transactions in log
order, read a page at a time (GET /v1/feed) or followed as they come (GET /v1/feed/stream).

A follower waits on this worker's own applications, and every POLL_S catches up on what
other workers appended (ContractService.load), so an event applied by another worker on the
same database arrives within about POLL_S. `close()` (on the app's shutdown) ends every
follower's wait, so open streams finish before the server stops. Raises LedgerError
(cloud/services/refusals.py): 401 "token", 403 "participant".
"""

from __future__ import annotations

import asyncio
import enum
import time

from cloud.contracts import auth, participants
from cloud.contracts.engine import Applied
from cloud.contracts.feeds import MAX_PAGE, FeedEvent, Feeds, owner_of
from cloud.services.contracts import ContractService
from cloud.services.shared import Shared
from gateway.refusal import Refused

HEARTBEAT_S = 15.0  # a stream's comment line when nothing happened: proxies keep it open
POLL_S = 1.0  # how often a waiting follower catches up on other workers' transactions


class Ended(enum.Enum):
    """Why a feed stream ended. Each is a normal end: the client may reconnect with
    Last-Event-ID (after signing in again, for the first two)."""

    EXPIRED = "the token expired"
    REVOKED = "the reader was suspended or rotated away"  # after the event saying so
    SHUTDOWN = "the server is shutting down"
    GONE = "the client went away"  # seen when a write fails


class FeedService:
    """Every participant's feed on this worker (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService) -> None:
        """Start with empty feeds: register before contracts.load(), which replays every
        transaction into them."""
        self.shared = shared
        self.contracts = contracts
        self.feeds = Feeds()
        self.heartbeat_s = HEARTBEAT_S
        self.poll_s = POLL_S
        self.closing = False
        self._changed = asyncio.Event()  # set, then replaced, when an event is added
        self._polled = 0.0
        contracts.listeners.append(self._applied)

    def _applied(self, index: int, applied: Applied) -> None:
        if self.feeds.add(self.contracts.state, index, applied):
            self._wake()

    def deliver(self, index: int, derived: Applied) -> None:
        """Add notifications derived beside the contracts from the change at log index
        `index` (the stock index's shortage alerts: cloud/services/stock.py), as that
        change's own are: call it from a listener registered after this service's, so
        they follow them in log order."""
        self._applied(index, derived)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """End every follower's wait: the app is shutting down."""
        self.closing = True
        self._wake()

    async def owner(self, reader: auth.Token | None) -> str:
        """Return whose feed `reader` reads: its own, after catching up with the log.
        Raises LedgerError 401 "token" without a reader, 403 "participant" for a did no
        longer a regulator or active participant."""
        refusals = self.shared.refusals
        if reader is None:
            raise refusals.refuse("token", "sign in (POST /v1/auth/token) to read your feed", 401)
        await self.contracts.load()
        state = self.contracts.state
        try:
            participants.identify(state, reader.did)
        except Refused as e:
            raise refusals.of(e) from None
        return owner_of(state, reader.did)  # a regulator's either point: one feed

    def check_cursor(self, owner: str, after: int, field: str) -> None:
        """Require `after` (named `field` in a refusal) to be at most the id of the last
        event of `owner`'s feed, as this worker has applied the log (owner() caught up):
        a cursor from the future would wait past events that will never come again.
        Raises LedgerError 400 `field`."""
        last = self.feeds.last(owner)
        if after > last:
            detail = f"got {after}, want at most {last}, the feed's last event"
            raise self.shared.refusals.refuse(field, detail, 400)

    def ended(self, reader: auth.Token, owner: str, now: float | None = None) -> Ended | None:
        """Return why a stream of `owner`'s feed to `reader` must end now (Unix time `now`),
        or None while it may go on."""
        if self.closing:
            return Ended.SHUTDOWN
        if (time.time() if now is None else now) >= reader.expires:
            return Ended.EXPIRED
        try:
            who = participants.identify(self.contracts.state, reader.did)
        except Refused:
            return Ended.REVOKED
        return None if who.id == owner else Ended.REVOKED

    def page(self, owner: str, after: int, limit: int) -> tuple[list[FeedEvent], int]:
        """Return at most `limit` (1 to MAX_PAGE) events of `owner`'s feed after the
        `after`-th, and the id of its last event, as this worker has applied the log (owner()
        caught up with it)."""
        return self.feeds.page(owner, after, limit), self.feeds.last(owner)

    async def follow(self, owner: str, after: int, wait_s: float) -> list[FeedEvent]:
        """Return the events of `owner`'s feed after the `after`-th as soon as there are
        some, or [] after `wait_s` seconds without one, or at once when closing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self.closing:
            if events := self.feeds.page(owner, after, MAX_PAGE):
                return events
            left = deadline - loop.time()
            if left <= 0:
                break
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(left, self.poll_s))
            except TimeoutError:
                await self._catch_up()
        return []

    async def _catch_up(self) -> None:
        """Apply what other workers appended, at most once per poll_s for all followers."""
        now = time.monotonic()
        if now - self._polled >= self.poll_s:
            self._polled = now
            await self.contracts.load()

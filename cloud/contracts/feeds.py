"""Per-participant notification feeds (docs/contracts.md §5, "Feeds"): the events the
contracts' rules raise as they apply a transaction (engine.Notification: a shipment addressed
to a participant, a recall reaching the holders of every descendant lot, a quarantine of a
lot it holds, a disputed count, ...), kept per participant in log order. Pure: no storage, no
clock.

A feed is derived from the log alone: whoever applies the transactions in log order (every
worker, at start by replay) derives the same events in the same order, so a feed needs no
table of its own and every worker answers the same cursor. An event's `id` is its position
in its owner's feed, from 1: the cursor (`after=N` reads the events after the N-th).

A feed's owner is a participant's id (the DID it was admitted with, which a key rotation
keeps, so its feed follows it to the new key), or the DID itself for a regulator (no
participant record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cloud.contracts import participants
from cloud.contracts.didkey import from_point, to_xonly
from cloud.contracts.engine import Applied, View

MAX_PAGE: Final = 1000  # events per page of GET /v1/feed


@dataclass(frozen=True)
class FeedEvent:
    """One event of a feed: its position (`id`, from 1), the log index of the entry that
    raised it (a transaction's 0x03, or a reading batch's), that transaction's id (empty
    for a reading batch: engine.commit_changes), and the event itself."""

    id: int
    index: int
    tx: str
    event: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "tx": self.tx, "event": dict(self.event)}


def owner_of(view: View, did: str) -> str:
    """Return the owner of `did`'s feed: the id of the participant whose key it is (current
    or rotated away), else the DID of its x-only key with an even Y (a regulator: the State
    knows regulators by x-only key, so a rule alerting one names that DID,
    packs.suspect). Requires a valid did:key (the engine's notifications and signed-in
    readers' tokens name only those)."""
    xonly = to_xonly(did)
    key = view.get(participants.KEY, xonly.hex())
    return from_point(b"\x02" + xonly) if key is None else str(key["participant"])


class Feeds:
    """Every participant's feed, in memory, rebuilt by replay (module docstring)."""

    def __init__(self) -> None:
        self._feeds: dict[str, list[FeedEvent]] = {}

    def add(self, view: View, index: int, applied: Applied) -> list[str]:
        """Append the notifications of one applied transaction (its 0x03 entry at `index`)
        to their owners' feeds; `view` is a State that holds it. Return the owners told."""
        told = []
        for note in applied.notifications:
            owner = owner_of(view, note.did)
            feed = self._feeds.setdefault(owner, [])
            feed.append(FeedEvent(len(feed) + 1, index, applied.tx_id, note.event))
            told.append(owner)
        return told

    def page(self, owner: str, after: int, limit: int) -> list[FeedEvent]:
        """Return at most `limit` events of `owner`'s feed after the `after`-th (0: from
        the start). Requires after >= 0 and limit >= 1."""
        return self._feeds.get(owner, [])[after : after + limit]

    def last(self, owner: str) -> int:
        """Return the id of the last event of `owner`'s feed (0: none yet)."""
        return len(self._feeds.get(owner, ()))

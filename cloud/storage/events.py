"""Gateway events (gateway/event.py) as stored: each a log entry (kind 0x05) and a row of
`gateway_events`, a gateway's seqs consecutive from 0."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from cloud.log.tlog import ENTRY_EVENT
from cloud.storage.engine import Tx
from cloud.storage.errors import StoreConflict
from cloud.storage.log import Commit
from gateway.event import Event


def events_to_store(
    events: Sequence[Event], stored: Mapping[int, tuple[int, bytes]], last: int
) -> tuple[list[bytes], list[Event]]:
    """Decide a page of a gateway's events: `stored` maps the page's seqs already stored
    to (log index, entry), `last` is the gateway's newest stored seq (-1: none). Return
    (log entries to append, the events they carry). Raises StoreConflict "event conflict"
    for another record at a stored seq, "event gap" for a new event whose seq is not the
    next."""
    entries, fresh = [], []
    want = last + 1
    for ev in events:
        entry = bytes([ENTRY_EVENT]) + ev.encode()
        if ev.seq in stored:
            if stored[ev.seq][1] != entry:
                raise StoreConflict(
                    "event conflict", f"another event {ev.seq} is stored for this gateway"
                )
        elif ev.seq != want:
            raise StoreConflict("event gap", f"got event {ev.seq}, want event {want}")
        else:
            entries.append(entry)
            fresh.append(ev)
            want += 1
    return entries, fresh


def answer_events(
    events: Sequence[Event], stored: Mapping[int, tuple[int, bytes]], first: int
) -> list[tuple[int, bool]]:
    """Return (log index, stored now) per event, the new ones appended from index `first`
    in page order (events_to_store's decision)."""
    answer, index = [], first
    for ev in events:
        if ev.seq in stored:
            answer.append((stored[ev.seq][0], False))
        else:
            answer.append((index, True))
            index += 1
    return answer


async def store_events(
    commit: Commit, gateway: bytes, events: Sequence[Event]
) -> list[tuple[int, bool]]:
    """Store a page of `gateway`'s signed events, consecutive seqs in ascending order; see
    Store.store_events. Raises StoreConflict, storing nothing."""
    tx = commit.tx
    last = await tx.fetchval("SELECT max(seq) FROM gateway_events WHERE gateway = ?", gateway)
    rows = await tx.fetchall(
        "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
        "JOIN log_entries e ON e.idx = g.log_index "
        "WHERE g.gateway = ? AND g.seq >= ? AND g.seq <= ?",
        gateway,
        events[0].seq,
        events[-1].seq,
    )
    stored = {int(seq): (int(index), bytes(entry)) for seq, index, entry in rows}
    entries, fresh = events_to_store(events, stored, -1 if last is None else int(last))
    first = 0
    if fresh:
        first = await commit.append(entries)
        now = time.time()
        await tx.executemany(
            "INSERT INTO gateway_events (gateway, seq, log_index, time, kind, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(gateway, e.seq, first + i, e.time, e.kind, now) for i, e in enumerate(fresh)],
        )
    return answer_events(events, stored, first)


async def gateway_events(
    tx: Tx, gateway: bytes, after: int, limit: int
) -> list[tuple[int, int, bytes]]:
    """(seq, log index, record) of up to `limit` of `gateway`'s events with seq > after,
    oldest first."""
    rows = await tx.fetchall(
        "SELECT g.seq, g.log_index, e.entry FROM gateway_events g "
        "JOIN log_entries e ON e.idx = g.log_index "
        "WHERE g.gateway = ? AND g.seq > ? ORDER BY g.seq LIMIT ?",
        gateway,
        after,
        limit,
    )
    return [(int(seq), int(index), bytes(entry[1:])) for seq, index, entry in rows]

"""Readings drive a lot's quality (issue 11 §4): the cold chain of every lot with boxes on
it, fed from the ledger's verified readings inside the attachment windows, and the automatic
quarantine it decides. Pure: no storage, no clock.

Not a signed transaction, so its state changes are defined by the log alone. Whoever applies
the log (the contract service live, `verify --replay`, a replaying witness) keeps one
ColdChains beside the State and, in log order:

  - after each block of applied transactions, calls `after_transactions(state, applied)`
    with what the engine returned for them: a new leg (lots_boxes' LEG record) is opened, and
    a shipment's leg closes at its receive transaction's time (a gap is final only then);
  - for each reading batch entry, calls `apply_readings(state, readings)` with the batch's
    verified readings as (box key, time_s, centi-°C, centi-% relative humidity), both None
    for a sensor error.

Both return an engine.Applied (tx_id "") whose records belong in the same database
transaction as the entries that caused them, before the block's 0x04 state-root entry. They
depend only on the State, the ColdChains and their arguments, so a replay from the log gives
the same records and roots. A refused commit leaves the ColdChains ahead of the database: the
service rebuilds both by replay then.

What it writes, public records only (so no salt is needed, and nothing names a holder):

  QUALITY (gtin, lot)    {"status": "quarantined", "source": "cold-chain", "reason", "since"}
                         when the lot's LotColdChain says quarantine and the lot is released
                         (its holders are told) or already quarantined by the cold chain (the
                         reason follows the verdict). A hold's or damage report's quarantine
                         and a rejection are left alone. A later calm reading never lifts it:
                         only a signed `dispose` does.
  COLDCHAIN (gtin, lot)  {"verdict", "since"}: the verdict last acted on, so a disposed lot is
                         not quarantined again for the same verdict; a different one (a late
                         batch revealing an earlier excursion) quarantines it again.

The reason names the kind and times of the excursion or gap, never a box, leg or shipment;
`since` is the excursion's raised time or the gap's end (ms), not when it was evaluated.
The per-leg aggregates (coldchain.Leg.record) stay beside the tree: a history reads them from
the LotColdChain objects, which replay rebuilds.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from cloud.contracts import lots, lots_boxes, participants
from cloud.contracts.coldchain import ColdChainError, LotColdChain, Quarantine, Reading, Summary
from cloud.contracts.engine import Applied, Notification, Record, State, View, commit_changes
from device import reading
from gateway.alarms import LotProfile
from gateway.jcs import canonicalize

SOURCE: Final = "cold-chain"
# One verified reading as the service hands it over: box x-only key, the reading's own time
# (Unix seconds), its centi-°C value and its centi-% relative humidity, both None for a
# sensor error. The humidity may be left out (its figures are then over the readings that
# carry it).
BoxReading = tuple[bytes, int, int | None] | tuple[bytes, int, int | None, int | None]
LotId = tuple[str, str]


class ColdChains:
    """The LotColdChain of each lot that has a leg, by (gtin, lot): beside the State, never
    in the tree, rebuilt by replaying the log (transactions and reading batches in order)."""

    def __init__(self) -> None:
        self.lots: dict[LotId, LotColdChain] = {}
        # Every box that has an attachment window (an ATTACHMENT record), as after_transactions
        # saw them written: whoever applies a reading batch may pass over the readings of other
        # boxes unread (they change nothing), and a store may fetch only these boxes' readings.
        self.attached: set[bytes] = set()

    def _chain(self, view: View, gtin: str, lot: str) -> LotColdChain:
        chain = self.lots.get((gtin, lot))
        if chain is None:
            record = view.get(lots.LOT, gtin, lot)
            assert record is not None, "a leg is only on a commissioned lot"
            chain = LotColdChain(LotProfile.from_signed(record["profile"]))
            self.lots[(gtin, lot)] = chain
        return chain

    def _open(self, view: View, gtin: str, lot: str, leg: str) -> LotColdChain:
        """Return the lot's chain with `leg` open (its LEG record's start), closing a shipment's
        leg that was received."""
        chain = self._chain(view, gtin, lot)
        if leg not in chain.legs:
            record = view.get(lots.LEG, gtin, lot, leg)
            assert record is not None, "a window names a leg with a LEG record"
            chain.open_leg(leg, lots_boxes.ceil_s(record["start"]))
        return chain

    def _close_received(self, view: View, gtin: str, lot: str, leg: str) -> bool:
        """Close a shipment's leg once the shipment is received, at the receive's time (not
        before the leg's start). Return whether it is closed."""
        end = _received_ms(view, leg)
        if end is None:
            return False
        chain = self._open(view, gtin, lot, leg)
        opened = chain.legs[leg]
        if not opened.closed:
            # Readings timed after the receive may already be in (its time is the signer's,
            # within minutes of the server's): the leg then ends at the latest of them.
            latest = max((b.times[-1] for b in opened.boxes.values() if b.times), default=0)
            chain.close_leg(leg, max(opened.start_s, end // 1000, latest))
        return True

    def after_transactions(
        self, state: State, applied: Iterable[Applied], *, root: bool = True
    ) -> Applied:
        """Follow a block of applied transactions: open the legs they created and close the
        shipment legs they received; return the quarantines that follow (see the module)."""
        touched: set[LotId] = set()
        for each in applied:
            for record in each.put.values():
                if record.type == lots.ATTACHMENT:
                    self.attached.add(bytes.fromhex(record.fields[0]))
                elif record.type == lots.LEG:
                    gtin, lot, leg = record.fields
                    self._open(state, gtin, lot, leg)
                    touched.add((gtin, lot))
                elif record.type == lots.SHIPMENT:
                    leg = f"shipment:{record.fields[0]}"
                    value = record.value
                    if state.get(lots.LEG, value["gtin"], value["lot"], leg) is not None:
                        self._close_received(state, value["gtin"], value["lot"], leg)
                        touched.add((value["gtin"], value["lot"]))
        return self._evaluate(state, touched, root)

    def apply_readings(
        self, state: State, readings: Iterable[BoxReading], *, root: bool = True
    ) -> Applied:
        """Feed one batch's verified readings to every leg whose attachment window holds
        them (a shipment's window ends at its receive) and return the quarantines that
        follow. Readings of boxes on no lot, or outside every window, are ignored. The result
        depends on the set of readings, not on how they are cut into batches, except for two
        readings of one box at one second with different values: the first applied stays."""
        groups: dict[tuple[str, str, str, str], list[Reading]] = defaultdict(list)
        windows: dict[bytes, list[dict[str, Any]]] = {}
        for box, time_s, cc, *humidity in readings:
            if box not in windows:
                windows[box] = lots_boxes.windows(state, box)
            for w in windows[box]:
                end = w["end"]
                if w["shipment"] is not None:
                    received = _received_ms(state, w["leg"])
                    if received is not None:
                        end = received if end is None else min(end, received)
                if w["start"] <= time_s * 1000 and (end is None or time_s * 1000 <= end):
                    rh = humidity[0] if humidity else None
                    groups[(w["gtin"], w["lot"], w["leg"], box.hex())].append((time_s, cc, rh))
        touched: set[LotId] = set()
        for (gtin, lot, leg, box_hex), batch in sorted(groups.items(), key=lambda g: g[0]):
            chain = self._open(state, gtin, lot, leg)
            try:
                chain.apply(leg, box_hex, batch)
            except ColdChainError:
                for one in sorted(batch, key=lambda r: r[0]):
                    try:
                        chain.apply(leg, box_hex, [one])
                    except ColdChainError:
                        continue  # the same box and second with another value: first stays
            touched.add((gtin, lot))
        return self._evaluate(state, touched, root)

    def _evaluate(self, state: State, touched: set[LotId], root: bool) -> Applied:
        changes: dict[bytes, Record | None] = {}
        notes: list[Notification] = []
        for gtin, lot in sorted(touched):
            verdict = self.lots[(gtin, lot)].quarantine()
            if verdict is not None:
                _quarantine(state, gtin, lot, verdict, changes, notes)
        return commit_changes(state, "", changes, notes, root=root)

    def summary(self, view: View, gtin: str, lot: str) -> Summary | None:
        """Return the lot's cold-chain summary with its boxes' calibration due times, or None
        if no box was ever attached to it."""
        chain = self.lots.get((gtin, lot))
        if chain is None:
            return None
        due = {}
        for leg in chain.legs.values():
            for box in leg.boxes:
                if (when := lots_boxes.calibration_due_s(view, box)) is not None:
                    due[box] = when
        return chain.summary(due)


def box_reading(r: reading.Reading) -> BoxReading:
    """Return a verified reading as apply_readings takes it: its box, its own time, its
    centi-°C value and centi-% humidity (both None for a sensor error, device/reading.py
    FLAG_SENSOR_ERROR)."""
    if r.flags & reading.FLAG_SENSOR_ERROR:
        return bytes(r.key), int(r.time), None, None
    return bytes(r.key), int(r.time), int(r.temperature), int(r.humidity)


def _received_ms(view: View, leg: str) -> int | None:
    """Return when the shipment a leg is named after was received, None if it is a storage
    leg or still in transit."""
    if not leg.startswith("shipment:"):
        return None
    shipment = view.get(lots.SHIPMENT, leg.removeprefix("shipment:"))
    if shipment is None or shipment["received"] is None:
        return None
    return int(shipment["received"])


def public_verdict(verdict: Quarantine) -> tuple[str, int]:
    """Return the quarantine's public reason (kind and times, no box, leg or shipment) and
    its time in ms (the excursion's raised time, the gap's end)."""
    e, gap = verdict.excursion, verdict.gap
    if e is not None:
        start = utc(e.start_s)
        if e.kind == "cumulative":
            return f"cold chain: {e.worst_cc} s out of range from {start}", e.raised_s * 1000
        worst = f"worst {celsius(e.worst_cc)}"
        return f"cold chain: {e.kind} excursion from {start}, {worst}", e.raised_s * 1000
    assert gap is not None
    return (
        f"cold chain: no reading from {utc(gap.start_s)} to {utc(gap.end_s)}",
        gap.end_s * 1000,
    )


def utc(seconds: int) -> str:
    """A reading's time as people read it on the public record: ISO 8601, UTC, to the
    second (deterministic: no local zone, no float)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def celsius(centi: int) -> str:
    """Centi-°C as °C with two decimals, by integer arithmetic (no float in a record)."""
    sign = "-" if centi < 0 else ""
    whole, part = divmod(abs(centi), 100)
    return f"{sign}{whole}.{part:02d} °C"


def _public(rtype: Any, fields: list[str], value: dict[str, Any]) -> Record:
    return Record(rtype, tuple(fields), canonicalize(value), None)


def _quarantine(
    state: State,
    gtin: str,
    lot: str,
    verdict: Quarantine,
    changes: dict[bytes, Record | None],
    notes: list[Notification],
) -> None:
    """Act on a verdict once: record it, quarantine a released lot (telling its holders) or
    follow the reason of a cold-chain quarantine still standing."""
    reason, since = public_verdict(verdict)
    marker = {"verdict": reason, "since": since}
    if state.get(lots.COLDCHAIN, gtin, lot) == marker:
        return
    record = _public(lots.COLDCHAIN, [gtin, lot], marker)
    changes[record.key] = record
    quality = state.get(lots.QUALITY, gtin, lot)
    assert quality is not None
    was_released = quality["status"] == lots.RELEASED
    ours = quality["status"] == lots.QUARANTINED and quality["source"] == SOURCE
    if not (was_released or ours):
        return
    value = {"status": lots.QUARANTINED, "source": SOURCE, "reason": reason, "since": since}
    record = _public(lots.QUALITY, [gtin, lot], value)
    changes[record.key] = record
    if was_released:
        event = {"type": "quarantined", "gtin": gtin, "lot": lot, "reason": reason}
        notes.extend(Notification(did, event) for did in lots.holders_to_tell(state, [(gtin, lot)]))


@dataclass(frozen=True)
class LegHistory:
    """One leg of a lot: a shipment (sender and receiver, current DIDs) or a holder's storage
    (sender None, receiver the holder), its start and end (ms; end None while open) and the
    boxes on it."""

    leg: str
    shipment: str | None
    sender: str | None
    receiver: str
    start: int
    end: int | None
    boxes: tuple[str, ...]


@dataclass(frozen=True)
class History:
    """A lot's history: its legs with custody, its quality status and the cold-chain summary
    (None without boxes)."""

    gtin: str
    lot: str
    quality: dict[str, Any]
    legs: tuple[LegHistory, ...]
    coldchain: Summary | None


def history(view: View, chains: ColdChains, gtin: str, lot: str) -> History:
    """Return the lot's history from the records and the aggregates (no rescan of readings).
    Raises KeyError if the lot was never commissioned. Unfiltered: the read policy decides
    what a reader sees."""
    quality = view.get(lots.QUALITY, gtin, lot)
    if quality is None:
        raise KeyError(f"{gtin}/{lot}")
    chain = chains.lots.get((gtin, lot))
    opened = {} if chain is None else chain.legs
    legs = []
    for name in sorted(opened, key=lambda n: (opened[n].start_s, n)):
        record = view.get(lots.LEG, gtin, lot, name)
        assert record is not None
        shipment = record["shipment"]
        if shipment is not None:
            s = view.get(lots.SHIPMENT, shipment)
            assert s is not None
            sender: str | None = participants.by_id(view, s["sender"])["did"]
            receiver = participants.by_id(view, s["receiver"])["did"]
            end = s["received"]
        else:
            sender, end = None, None
            receiver = participants.by_id(view, name.removeprefix("storage:"))["did"]
        boxes = tuple(record["boxes"])
        legs.append(LegHistory(name, shipment, sender, receiver, record["start"], end, boxes))
    return History(gtin, lot, quality, tuple(legs), chains.summary(view, gtin, lot))

"""Which lots a box is on, with their storage profiles: what a site's gateway alarms on
(issue 11 §4, docs/protocol.md "Lots of a gateway's boxes"). Pure: the caller passes the
time and the boxes (the registry's boxes of one site).

A box is on a lot while one of its attachment windows (lots_boxes.py, ATTACHMENT) for that
lot has not ended: end null, or at or after `now_ms` (windows are closed intervals [start,
end] in ms). A window that starts later is listed too, with its start, so the gateway
applies the lot's profile from then on even if the cloud is away at that moment. Each lot
is named once per box (several legs of one lot on one box: the earliest start, the latest
end, null if any is open).

What it tells: the box, the lot (gtin, lot number), the window and the lot's storage
profile (LOT, public: printed on the pack). Nothing of holders, quantities, shipments or
legs: those are private records and not the gateway's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from cloud.contracts import lots, lots_boxes
from cloud.contracts.engine import View
from gateway.alarms import LotProfile
from gateway.lot_profiles import LotOn


def _merge(a: LotOn, start: int, end: int | None) -> LotOn:
    """Widen `a` to cover [start, end] too (None: open)."""
    wider = None if a.end is None or end is None else max(a.end, end)
    return replace(a, start=min(a.start, start), end=wider)


def lots_of_box(view: View, box: bytes, now_ms: int) -> list[LotOn]:
    """Return the lots box `box` is on at or after `now_ms` (module docstring), sorted by
    (gtin, lot), each in the form the gateway reads (gateway/lot_profiles.py LotOn).
    Windows that ended before `now_ms` are left out."""
    found: dict[tuple[str, str], LotOn] = {}
    for window in lots_boxes.windows(view, box):
        end = window["end"]
        if end is not None and end < now_ms:
            continue
        subject = (window["gtin"], window["lot"])
        start = int(window["start"])
        if subject in found:
            found[subject] = _merge(found[subject], start, end)
            continue
        record = view.get(lots.LOT, *subject)
        assert record is not None, "a box is only ever attached to a commissioned lot"
        profile = LotProfile.from_signed(record["profile"])  # checked when commissioned
        found[subject] = LotOn(*subject, start, end, profile)
    return [found[k] for k in sorted(found)]


def lots_of_boxes(view: View, boxes: Iterable[bytes], now_ms: int) -> dict[bytes, list[LotOn]]:
    """Return lots_of_box for each of `boxes` that is on at least one lot, by box."""
    out = {}
    for box in sorted(set(boxes)):
        if on := lots_of_box(view, box, now_ms):
            out[box] = on
    return out

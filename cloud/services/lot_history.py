"""A lot's history as GET /v1/lots/{gtin}/{lot}/history answers it: lots_coldchain.History
(the lot's legs and its cold-chain summary, from the aggregates) rendered for what the read
policy shows the reader (cloud/contracts/policy.py history_view, sees_leg).

    STATUS     {"gtin", "lot", "quality"}: the public's (`global only`)
    COLDCHAIN  and "legs" and "coldchain": per leg (kind, start, end) and overall figures,
               excursions and gaps. A leg whose custody the reader sees is named ("shipment:
               <id>", "storage:<holder id>") with its shipment, sender and receiver (current
               DIDs) and boxes, its excursions naming their box; any other leg is "leg 1",
               "leg 2", ... in start order, with no box, shipment or party. The cold chain's
               own verdict (which names box and leg) only when every leg is seen; the lot's
               quality record states the public reason anyway

Figures: count, sensor_errors, min_c, max_c, mean_c, mkt_c (°C, null without valid
readings), min_rh, max_rh, mean_rh (relative humidity, %, likewise),
time_out_of_range_s, calibration_flagged (readings at or after their box's calibration due
date). Times: legs' start and end in ms (the transactions'), excursions'
and gaps' in Unix seconds (the readings'). "coldchain" is null for a lot no box was ever
attached to.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from typing import Any

from cloud.contracts import policy
from cloud.contracts.coldchain import Excursion, Gap, LegSummary, Summary
from cloud.contracts.lots_coldchain import History, LegHistory


def render(found: History, view: str, seen: Collection[str] = ()) -> dict[str, Any]:
    """Return the JSON answer for `view` (policy.STATUS or COLDCHAIN); `seen`: the legs whose
    custody the reader sees (policy.sees_leg)."""
    answer: dict[str, Any] = {"gtin": found.gtin, "lot": found.lot, "quality": found.quality}
    if view == policy.STATUS:
        return answer
    summary = found.coldchain
    names = {
        leg.leg: leg.leg if leg.leg in seen else f"leg {n}" for n, leg in enumerate(found.legs, 1)
    }
    answer["legs"] = [_leg(leg, names[leg.leg], leg.leg in seen) for leg in found.legs]
    every = all(leg.leg in seen for leg in found.legs)
    answer["coldchain"] = None if summary is None else _coldchain(summary, names, seen, every)
    return answer


def _leg(leg: LegHistory, name: str, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "leg": name,
        "kind": "shipment" if leg.shipment is not None else "storage",
        "start": leg.start,
        "end": leg.end,
    }
    if full:
        out |= {
            "shipment": leg.shipment,
            "sender": leg.sender,
            "receiver": leg.receiver,
            "boxes": list(leg.boxes),
        }
    return out


def _coldchain(
    summary: Summary, names: dict[str, str], seen: Collection[str], every: bool
) -> dict[str, Any]:
    legs = [_leg_figures(leg, names, seen) for leg in summary.legs]
    out: dict[str, Any] = {
        "overall": asdict(summary.overall),
        "legs": legs,
        "excursions": [_excursion(e, names, seen) for e in summary.excursions],
        "gaps": [_gap(g, names) for g in summary.gaps],
    }
    if every:
        verdict = summary.quarantine
        out["verdict"] = None if verdict is None else verdict.reason
    return out


def _leg_figures(leg: LegSummary, names: dict[str, str], seen: Collection[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "leg": names.get(leg.leg, leg.leg),
        "start_s": leg.start_s,
        "end_s": leg.end_s,
        **asdict(leg.stats),
        "excursions": [_excursion(e, names, seen) for e in leg.excursions],
        "gaps": [_gap(g, names) for g in leg.gaps],
    }
    if leg.leg in seen:
        out["boxes"] = list(leg.boxes)
    return out


def _excursion(e: Excursion, names: dict[str, str], seen: Collection[str]) -> dict[str, Any]:
    out = e.to_json()
    if e.leg:
        out["leg"] = names.get(e.leg, e.leg)
    if e.leg not in seen:
        del out["box"]  # the lot's cumulative one names none
    return out


def _gap(g: Gap, names: dict[str, str]) -> dict[str, Any]:
    out = g.to_json()
    out["leg"] = names.get(g.leg, g.leg)
    return out

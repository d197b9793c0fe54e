"""The cloud's answer of which lots a gateway's boxes are on (gateway/lot_profiles.py): read
strictly, written back the same; and what a box's zone alarms on because of them: the lots
whose window is open now, a lot whose range conflicts left out and named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.alarms import AlarmProfile, LotProfile, with_lots
from gateway.lot_profiles import AnswerError, LotOn, combine, parse_answer, to_answer

GATEWAY = bytes(31) + b"\x01"
BOX = bytes(31) + b"\x02"
PROFILE = {
    "low_cc": 200,
    "high_cc": 500,
    "delay_consecutive_s": 300,
    "delay_cumulative_s": 1800,
    "hysteresis_cc": 20,
    "max_gap_s": 900,
    "needs_licence": 0,
}
NOW = 1_800_000_000_000


def on(lot: str, start: int = NOW, end: int | None = None, **over: int) -> LotOn:
    return LotOn("09506000134352", lot, start, end, LotProfile.from_signed(PROFILE | over))


def answer(**over: Any) -> dict[str, Any]:
    doc = to_answer(GATEWAY, "w1", NOW, {BOX: [on("A"), on("B", end=NOW + 5)]})
    return doc | over


def test_an_answer_round_trips() -> None:
    doc = answer()
    assert doc["boxes"][0]["lots"][0] == {
        "gtin": "09506000134352",
        "lot": "A",
        "start": NOW,
        "end": None,
        "profile": PROFILE,
    }
    when, lots = parse_answer(json.dumps(doc).encode(), GATEWAY)
    assert when == NOW
    assert lots == {BOX: (on("A"), on("B", end=NOW + 5))}


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        (answer(gateway="00" * 32), r"^gateway: got '0000"),
        (answer(time=-1), r"^time: got '-1'"),
        (answer(extra=1), r"^want \{gateway, site, time, boxes\}$"),
        (answer(boxes={}), r"^boxes: want a list$"),
        (answer(boxes=[{"box": "zz", "lots": []}]), r"^boxes\[0\]: want a box key"),
        (answer(boxes=[{"box": BOX.hex(), "lots": []}] * 2), r"^boxes\[1\]: want a box key"),
        (
            answer(boxes=[{"box": BOX.hex(), "lots": [on("A").to_json() | {"end": 1.5}]}]),
            r"^boxes\[0\]\.lots\[0\]\.end: got '1.5'",
        ),
        (
            answer(boxes=[{"box": BOX.hex(), "lots": [on("A").to_json() | {"profile": {"x": 1}}]}]),
            r"^boxes\[0\]\.lots\[0\]\.profile: low_cc: got 'absent'",
        ),
        (
            answer(boxes=[{"box": BOX.hex(), "lots": [on("A").to_json() | {"lot": ""}]}]),
            r"^boxes\[0\]\.lots\[0\]\.lot: got ''",
        ),
    ],
)
def test_a_malformed_answer_is_refused_naming_what(doc: dict[str, Any], error: str) -> None:
    with pytest.raises(AnswerError, match=error):
        parse_answer(json.dumps(doc).encode(), GATEWAY)


def test_an_answer_that_is_not_json_or_too_big_is_refused() -> None:
    with pytest.raises(AnswerError):
        parse_answer(b"{", GATEWAY)
    with pytest.raises(AnswerError):
        parse_answer(b" " * (8 << 20) + b"{}", GATEWAY)


def test_only_the_lots_whose_window_is_open_now_apply() -> None:
    zone = AlarmProfile()
    lots = [on("A", start=NOW + 1000), on("B", end=NOW - 1), on("C", high_cc=600)]
    applied = combine(zone, lots, NOW)
    assert list(applied.lots) == ["09506000134352/C"]
    assert applied.profile == with_lots(zone, [lots[2].profile])
    assert applied.profile.high_c == 6.0
    later = combine(zone, lots, NOW + 1000)  # A's window has opened
    assert list(later.lots) == ["09506000134352/A", "09506000134352/C"]
    assert later.profile.high_c == 5.0
    assert combine(zone, [], NOW).profile == zone


def test_a_lot_whose_range_conflicts_is_left_out_and_named() -> None:
    zone = AlarmProfile()
    frozen = on("F", low_cc=-2500, high_cc=-1500, hysteresis_cc=100)
    applied = combine(zone, [on("A"), frozen], NOW)
    assert list(applied.lots) == ["09506000134352/A"]
    assert applied.conflicts == ("09506000134352/F",)
    assert applied.profile.high_c == 5.0

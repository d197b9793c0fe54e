"""Readings drive a lot's quality (cloud/contracts/lots_coldchain.py): an excursion in a leg
quarantines the lot by readings alone and it stays so until a signed dispose; a gap is final
only when the shipment is received; the order of reading batches does not change the state
root; a replay of the log (transactions, registry boxes and reading batches in order) equals
the live state; a lot's history."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.contracts import catalog, lots, lots_coldchain
from cloud.contracts.engine import State
from cloud.contracts.lots_coldchain import BoxReading, ColdChains
from cloud.contracts.tx import SignedTx
from tests.cloud.contracts.world import GTIN, REGULATOR, party, supply_chain

BOX = party("box-1")
NOW = 1_800_000_000_000  # ms; readings are seconds from NOW_S
NOW_S = NOW // 1000
HIGH, CALM = 1000, 500  # centi-°C: above the profile's 8 °C, and well inside 2..8 °C

Event = tuple[str, Any]


class Live:
    """A supply chain applied as the service will: each transaction, then after_transactions;
    each reading batch through apply_readings; the log of it all, and the root after each."""

    def __init__(self) -> None:
        self.world = supply_chain()
        self.chains = ColdChains()
        self.events: list[Event] = []
        self.roots: list[bytes] = []
        self.notes: list[Any] = []
        self.events = [("tx", each) for each in self.world.log]
        self.roots = list(self.world.roots)

    def box(self, box: bytes, owner: bytes) -> None:
        self.world.state.boxes[box] = owner
        self.events.append(("box", (box, owner)))
        self.roots.append(self.world.state.root)

    def tx(self, who: str, tx_type: str, args: dict[str, Any], time_ms: int) -> None:
        applied = self.world.apply(self.world.sign(who, "lots", tx_type, args, time_ms=time_ms))
        after = self.chains.after_transactions(self.world.state, [applied])
        self.notes.extend(after.notifications)
        self.events.append(("tx", self.world.log[-1]))
        self.roots.append(self.world.state.root)

    def readings(self, batch: list[BoxReading]) -> None:
        applied = self.chains.apply_readings(self.world.state, batch)
        self.notes.extend(applied.notifications)
        self.events.append(("readings", batch))
        self.roots.append(self.world.state.root)

    @property
    def state(self) -> State:
        return self.world.state

    def quality(self, lot: str = "L1") -> dict[str, Any]:
        record = self.state.get(lots.QUALITY, GTIN, lot)
        assert record is not None
        return record


def replay(events: list[Event]) -> tuple[State, ColdChains, list[bytes]]:
    """Rebuild from the log alone, in its order."""
    engine, state, chains = catalog.engine(), State([REGULATOR.xonly]), ColdChains()
    roots = []
    for kind, item in events:
        if kind == "tx":
            signed, salt = item
            assert isinstance(signed, SignedTx)
            chains.after_transactions(state, [engine.apply(state, signed, salt)])
        elif kind == "box":
            state.boxes[item[0]] = item[1]
        else:
            chains.apply_readings(state, item)
        roots.append(state.root)
    return state, chains, roots


def shipped(live: Live | None = None) -> Live:
    """M commissions L1, ships it to D as S1 with BOX attached from NOW."""
    live = live or Live()
    live.world.commission("M", "L1", 100)
    live.events.append(("tx", live.world.log[-1]))
    live.roots.append(live.state.root)
    live.box(BOX.xonly, live.world.parties["M"].xonly)
    ship = {"gtin": GTIN, "lot": "L1", "shipment": "S1", "quantity": 100}
    live.tx("M", "ship", {**ship, "receiver": live.world.parties["D"].did}, NOW - 1000)
    attach = {"box": BOX.xonly.hex(), "shipment": "S1", "start": NOW, "end": None}
    live.tx("M", "attach", attach, NOW)
    return live


def series(start: int, values: list[int | None], step: int = 60) -> list[BoxReading]:
    return [(BOX.xonly, NOW_S + start + i * step, v) for i, v in enumerate(values)]


def test_an_excursion_quarantines_the_lot_by_readings_alone_until_dispose() -> None:
    live = shipped()
    live.readings(series(0, [CALM] * 10))
    assert live.quality()["status"] == "released"
    live.readings(series(600, [HIGH] * 20))  # 19 min above 8 °C: beyond the 15-min delay
    quality = live.quality()
    assert (quality["status"], quality["source"]) == ("quarantined", "cold-chain")
    assert (
        quality["reason"]
        == f"cold chain: high excursion from {lots_coldchain.utc(NOW_S + 600)}, worst 10.00 °C"
    )
    assert quality["since"] == (NOW_S + 600 + 900) * 1000  # raised at the delay, not evaluated
    record = live.state.record(lots.QUALITY, GTIN, "L1")
    assert record is not None and record.salt is None  # a public change
    assert [(n.did, n.event["type"]) for n in live.notes] == [
        (live.world.parties["D"].did, "quarantined")
    ]
    live.readings(series(1800, [CALM] * 30))  # calm again: never lifts it
    assert live.quality()["status"] == "quarantined"
    dispose = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "stability data"}
    live.tx("M", "dispose", dispose, NOW + 4_000_000)
    assert live.quality()["status"] == "released"
    live.readings(series(3600, [CALM] * 5))  # the same verdict does not quarantine it again
    assert live.quality()["status"] == "released"
    live.readings(series(0, [CALM]))  # a reading already held changes nothing
    assert live.quality()["status"] == "released"


def test_a_gap_is_final_only_when_the_shipment_is_received() -> None:
    live = shipped()
    live.readings(series(0, [CALM] * 3))
    live.readings(series(3 * 60 + 7200, [CALM] * 3))  # 2 h without a reading: over max_gap
    assert live.quality()["status"] == "released"  # the gap may yet be filled by backlog
    live.readings(series(3 * 60, [CALM] * 120))  # the backlog arrives: no gap left
    assert live.quality()["status"] == "released"
    # The last reading is at 7,500 s; the receive at 4 h closes the leg after 6,900 s of
    # silence, and only now is that gap final.
    live.tx("D", "receive", {"shipment": "S1", "quantity": 100}, NOW + 4 * 3_600_000)
    assert live.quality()["status"] == "quarantined"
    assert live.quality()["reason"].startswith("cold chain: no reading from ")
    history = lots_coldchain.history(live.state, live.chains, GTIN, "L1")
    (leg,) = history.legs
    assert (leg.leg, leg.shipment, leg.end) == ("shipment:S1", "S1", NOW + 4 * 3_600_000)
    assert (leg.sender, leg.receiver) == (live.world.parties["M"].did, live.world.parties["D"].did)
    assert history.coldchain is not None and history.coldchain.legs[0].end_s == NOW_S + 4 * 3600
    late = series(4 * 3600 + 60, [HIGH] * 30)  # after the receive: outside the shipment's leg
    live.readings(late)
    assert (
        history.coldchain.overall.count == live.chains.summary(live.state, GTIN, "L1").overall.count
    )  # type: ignore[union-attr]


def test_history_counts_readings_past_the_calibration_due_date() -> None:
    live = shipped()
    calibrate = {"box": BOX.xonly.hex(), "offset": 10, "date": NOW - 10**9, "due": NOW + 300_000}
    live.tx("M", "calibrate", calibrate, NOW)
    live.readings(series(0, [CALM] * 10))  # 0..540 s: the last four at or after 300 s
    summary = lots_coldchain.history(live.state, live.chains, GTIN, "L1").coldchain
    assert summary is not None and summary.overall.calibration_flagged == 5
    assert summary.overall.count == 10


def test_replay_from_the_log_equals_live() -> None:
    live = shipped()
    live.readings(series(0, [CALM] * 10))
    live.readings(series(600, [HIGH] * 20))
    live.tx("D", "receive", {"shipment": "S1", "quantity": 100}, NOW + 7_200_000)
    dispose = {"gtin": GTIN, "lot": "L1", "outcome": "rejected", "reason": "destroyed"}
    live.tx("M", "dispose", dispose, NOW + 7_300_000)
    state, chains, roots = replay(live.events)
    assert roots == live.roots
    assert state.records == live.state.records
    assert chains.summary(state, GTIN, "L1") == live.chains.summary(live.state, GTIN, "L1")


VALUES = [CALM] * 8 + [HIGH] * 20 + [CALM] * 8 + [None, CALM]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.randoms(use_true_random=False))
def test_reading_batches_in_any_order_give_the_same_root(cuts: int, rng: random.Random) -> None:
    readings = series(0, list(VALUES))
    one = shipped()
    one.readings(readings)
    shuffled = readings[:]
    rng.shuffle(shuffled)
    size = -(-len(shuffled) // cuts)
    batches = [shuffled[i : i + size] for i in range(0, len(shuffled), size)]
    many = shipped()
    for batch in batches:
        many.readings(batch)
    assert many.state.root == one.state.root
    assert many.quality() == one.quality()
    assert many.quality()["status"] == "quarantined"


def test_readings_of_unattached_boxes_or_outside_windows_change_nothing() -> None:
    live = shipped()
    before = live.state.root
    live.readings([(party("other").xonly, NOW_S, HIGH), *series(-60, [HIGH])])
    assert live.state.root == before
    assert live.chains.lots[(GTIN, "L1")].legs["shipment:S1"].count == 0


def test_what_a_reading_batch_writes_is_public() -> None:
    # What reading batches write is public: no record they put carries a salt.
    live = shipped()
    applied = live.chains.apply_readings(live.state, series(0, [HIGH] * 20))
    assert applied.put and all(r.salt is None for r in applied.put.values())
    assert applied.tx_id == ""
    assert applied.root == live.state.root  # the root after the batch, for its 0x04 entry


def test_readings_timed_after_a_receive_already_in_do_not_stop_it() -> None:
    live = shipped()
    live.readings(series(0, [CALM] * 10))  # to 540 s
    live.tx("D", "receive", {"shipment": "S1", "quantity": 100}, NOW + 300_000)  # at 300 s
    leg = live.chains.lots[(GTIN, "L1")].legs["shipment:S1"]
    assert leg.end_s == NOW_S + 540
    _, _, roots = replay(live.events)
    assert roots == live.roots


def test_the_public_reason_reads_as_people_read_times_and_temperatures() -> None:
    assert lots_coldchain.utc(0) == "1970-01-01T00:00:00Z"
    assert lots_coldchain.utc(1796546501) == "2026-12-06T08:41:41Z"
    assert [lots_coldchain.celsius(c) for c in (650, 5, -5, -250, 0)] == [
        "6.50 °C",
        "0.05 °C",
        "-0.05 °C",
        "-2.50 °C",
        "0.00 °C",
    ]

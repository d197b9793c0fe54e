"""Benchmarks of issue 12 (the pack at the counter, the lot for partners). This file holds
the EPCIS part; the other parts (pack verification, serial registration, the public proof
bundle, the element-string parser) are other engineers' and join it as functions of their
own beside `epcis_export`.

Run: .venv/bin/python bench/counter.py [--readings 100000] [--repeat 20]

EPCIS export of a lot with 100,000 readings on it (target <= 1 s): a lot commissioned,
shipped M→D, D→R and R→P (a box on each shipment, its readings a minute apart, with one
excursion), received, split, dispensed and recalled, applied with the ledger's own engine
and cold chains (cloud/contracts/catalog.py, lots_coldchain.py) and indexed as the ledger's
EPCIS service indexes it (cloud/contracts/epcis.py EventIndex); then timed, `--repeat`
times: the manufacturer's EPCISDocument of the lot and its descendants (the events built
from its transactions and the history's aggregates, policy applied) encoded as JSON, the
work GET /v1/lots/{gtin}/{lot}/epcis does after reading the lot's dozen stored transaction
bodies by primary key (not timed here: a few rows). Readings are fed to the cold chains as
the ledger feeds verified ones (their signatures are the ingest's cost, bench/cloud.py).

With `serials` (100,000 by default) the lot is serialized as a manufacturer does it: L1 is
commissioned with that many units and registered in lots/serialize transactions of up to
100,000 serials, R's split names each child's packs, and P decommissions five packs
(dispensed, destroyed, stolen, ...) and undoes one: the export then holds the
commissioning ObjectEvent with every pack's Digital Link URI in its epcList
(cloud/contracts/epcis_serials.py). Timed with it: decoding the lot's stored transaction
bodies (json.loads of their canonical bytes, as cloud/services/epcis.py ledger_tx does: a
100,000-serial registration is a body of ~1.9 MB), so the figure covers what a serialized
lot adds to the export; the database read of those rows is not timed.

Ratio: the export's median time against the same run's median time of json.dumps of the
very same document (ceiling / export: the share of the export that is only encoding).

Also: a query without MATCH_ parameters over --lots commissioned lots (every lot's events
are built: the cost a partner avoids by naming its lots).

Prints human-readable lines, then ends with exactly one line of JSON holding every figure.
"""

from __future__ import annotations

import datetime
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path and bench/device.py would shadow the package.
sys.path.insert(0, str(REPO))

from cloud import lots_cli  # noqa: E402
from cloud.contracts import (  # noqa: E402
    catalog,
    didkey,
    epcis,
    lots,
    lots_coldchain,
    participants,
    tx,
)
from cloud.contracts.engine import State  # noqa: E402
from cloud.contracts.lots_coldchain import ColdChains  # noqa: E402
from cloud.contracts.pack_index import MAX_PER_REGISTRATION  # noqa: E402
from cloud.services.epcis import ledger_tx  # noqa: E402
from device import schnorr  # noqa: E402

TARGET_EXPORT_S = 1.0
GTIN = "09506000134352"
PROFILE = lots_cli.storage_profile("2-8C")  # the 2-8 °C profile the CLI and demo sign
T0 = int(datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC).timestamp() * 1000)
BATCH = 100  # readings per batch, as a gateway uploads one box's
STEP_S = 60


def _secret(name: str) -> bytes:
    import hashlib

    return hashlib.sha256(b"bench/counter/" + name.encode()).digest()


class _Ledger:
    """The pure ledger: engine, State, cold chains and the EPCIS index, fed in log order."""

    def __init__(self) -> None:
        self.regulator = _secret("regulator")
        self.engine = catalog.engine()
        self.state = State([schnorr.pubkey(self.regulator)])
        self.chains = ColdChains()
        self.index = epcis.EventIndex()
        self.txs: dict[int, epcis.LedgerTx] = {}
        self.bodies: dict[int, tuple[str, bytes]] = {}  # as stored: tx id, canonical body
        self.at = 0
        self.keys: dict[str, bytes] = {}

    def tx(self, secret: bytes, contract: str, tx_type: str, args: dict[str, Any], ms: int) -> None:
        signed = tx.make(contract, tx_type, args, secret, time_ms=ms, aux=bytes(32))
        applied = self.engine.apply(self.state, signed, bytes(32))
        self.at += 1
        body = signed.body
        self.txs[self.at] = epcis.LedgerTx(
            self.at, signed.id, body.type, body.time, body.signer, body.args
        )
        self.bodies[self.at] = (signed.id, body.canonical)
        self.index.apply(self.at, applied)
        self.index.apply(self.at, self.chains.after_transactions(self.state, [applied]))

    def admit(self, name: str, role: str, ms: int, owner: bytes | None = None) -> None:
        secret = self.keys.setdefault(name, _secret(name))
        args: dict[str, Any] = {
            "did": didkey.from_secret(secret),
            "role": role,
            "name": name,
            "region": "DE",
            "licence": {"number": f"L-{name}", "issuer": "BfArM"},
        }
        if owner is not None:
            args["owner_keys"] = [owner.hex()]
        self.tx(self.regulator, "participants", "admit", args, ms)

    def lots(self, name: str, tx_type: str, args: dict[str, Any], ms: int) -> None:
        self.tx(self.keys[name], "lots", tx_type, args, ms)

    def did(self, name: str) -> str:
        return didkey.from_secret(self.keys[name])


def serial_numbers(count: int) -> list[str]:
    """`count` pack serials as a manufacturer's line prints them: PK and 8 digits."""
    return [f"PK{n:08d}" for n in range(count)]


def build(total: int, serials: int = 0) -> tuple[_Ledger, int]:
    """The supply chain of the module docstring with `total` readings and `serials`
    registered packs (0: not serialized); return the ledger and the number of readings the
    cold chains hold."""
    ledger = _Ledger()
    ms = T0
    for name, role in (("M", "manufacturer"), ("D", "distributor"), ("R", "retailer")):
        ledger.admit(name, role, ms, schnorr.pubkey(_secret(f"owner-{name}")))
    ledger.admit("P", "pharmacy", ms)
    for n, name in enumerate(("M", "D", "R")):  # each sender's box, on its owner key
        box = schnorr.pubkey(_secret(f"box-{n}"))
        ledger.state.boxes[box] = schnorr.pubkey(_secret(f"owner-{name}"))
    lot = {"gtin": GTIN, "lot": "L1"}
    quantity = max(1000, serials)
    ledger.lots("M", "commission", {**lot, "expiry": "281200", "quantity": quantity,
                                    "unit": "pack", "profile": PROFILE}, ms)  # fmt: skip
    packs = serial_numbers(serials)
    for at in range(0, serials, MAX_PER_REGISTRATION):
        ledger.lots("M", "serialize", {**lot, "serials": packs[at : at + MAX_PER_REGISTRATION]}, ms)
    legs = (
        ("M", "D", "S1", "L1", 1000),
        ("D", "R", "S2", "L1", 600),
        ("R", "P", "S3", "L1-A", 400),
    )
    held = 0
    for n, (sender, receiver, shipment, number, quantity) in enumerate(legs):
        if n == 2:  # R splits what it received before shipping a part on
            children = [{"lot": "L1-A", "quantity": 400}, {"lot": "L1-B", "quantity": 200}]
            split: dict[str, Any] = {**lot, "children": children}
            if serials:
                split["serials"] = {"L1-A": packs[:400], "L1-B": packs[400:600]}
            ledger.lots("R", "split", split, ms + 1000)
            ms += 2000
        args = {"gtin": GTIN, "lot": number, "shipment": shipment, "quantity": quantity}
        ledger.lots(sender, "ship", {**args, "receiver": ledger.did(receiver)}, ms)
        per_leg = total // 3 + (n < total % 3)  # every reading on some leg
        box = _secret(f"box-{n}")
        start_ms = ms + 1000
        attach = {"box": schnorr.pubkey(box).hex(), "shipment": shipment, "start": start_ms,
                  "end": None}  # fmt: skip
        ledger.lots(sender, "attach", attach, start_ms)
        first_s = -(-start_ms // 1000)
        key = schnorr.pubkey(box)
        for b in range(0, per_leg, BATCH):
            batch = []
            for i in range(b, min(b + BATCH, per_leg)):
                hot = n == 0 and 0 <= i - per_leg // 2 < 30  # 30 minutes too warm on the first leg
                batch.append((key, first_s + i * STEP_S, 1000 if hot else 500))
            ledger.at += 1
            ledger.index.apply(ledger.at, ledger.chains.apply_readings(ledger.state, batch))
            held += len(batch)
        ms = (first_s + per_leg * STEP_S) * 1000 + 1000
        ledger.lots(receiver, "receive", {"shipment": shipment, "quantity": quantity}, ms)
        if n == 0:  # the excursion quarantined it: M releases it after review
            ledger.lots("M", "dispose", {**lot, "outcome": "released", "reason": "review"},
                        ms + 1000)  # fmt: skip
        ms += 2000
    ledger.lots("P", "dispense", {"gtin": GTIN, "lot": "L1-A", "quantity": 5}, ms)
    if serials:
        for n, status in enumerate(("dispensed", "dispensed", "destroyed", "stolen", "sample")):
            args = {"gtin": GTIN, "serial": packs[n], "status": status}
            ledger.lots("P", "decommission", args, ms + 100 + n)
        ledger.lots("P", "undo", {"gtin": GTIN, "serial": packs[0]}, ms + 200)
    ledger.lots("M", "recall", {**lot, "class": "II", "reason": "label"}, ms + 1000)
    return ledger, held


def export(ledger: _Ledger, reader: epcis.Reader, now_ms: int) -> bytes:
    """The lot's and its descendants' EPCISDocument for `reader`, as JSON bytes: their
    transactions decoded from their stored bodies (cloud/services/epcis.py ledger_tx), the
    events built, the document encoded."""
    return json.dumps(export_document(ledger, reader, now_ms)).encode()


def export_document(ledger: _Ledger, reader: epcis.Reader, now_ms: int) -> dict[str, Any]:
    """The EPCISDocument `export` encodes, as a JSON object."""
    state, chains = ledger.state, ledger.chains
    family = lots.descendants(state, GTIN, "L1")
    wanted = ledger.index.indices([(GTIN, number) for number in family])
    txs = {}
    for i in wanted:
        tx_id, canonical = ledger.bodies[i]
        txs[i] = ledger_tx(i, tx_id, canonical)
    events = []
    for number in family:

        def history(number: str = number) -> lots_coldchain.History:
            return lots_coldchain.history(state, chains, GTIN, number)

        found = ledger.index.ledger(GTIN, number, txs, history)
        events += epcis.events_of(state, found, reader, now_ms)
    return epcis.document(epcis.merge(events), now_ms)


def epcis_export(readings: int, repeat: int, serials: int = 100_000) -> dict[str, Any]:
    """Time the EPCIS export of a lot with `readings` readings and `serials` registered
    packs (module docstring); return the figures."""
    t0 = time.perf_counter()
    ledger, held = build(readings, serials)
    built_s = time.perf_counter() - t0
    maker = participants.identify(ledger.state, ledger.did("M"))
    reader = epcis.Reader(maker.role, maker.id, lambda g, lot, who: True)
    now_ms = T0 + 400 * 86_400_000
    gc.collect()
    times, size, count = [], 0, 0
    for _ in range(repeat):
        start = time.perf_counter()
        body = export(ledger, reader, now_ms)
        times.append(time.perf_counter() - start)
        size = len(body)
    count = len(json.loads(body)["epcisBody"]["eventList"])
    # The same-run ceiling: encoding the very same document, json.dumps alone.
    document = export_document(ledger, reader, now_ms)
    dumps = []
    for _ in range(repeat):
        start = time.perf_counter()
        json.dumps(document).encode()
        dumps.append(time.perf_counter() - start)
    worst = max(times)
    epcs = sum(len(e.get("epcList", ())) for e in json.loads(body)["epcisBody"]["eventList"])
    return {
        "epcis_readings": held,
        "epcis_serials": serials,
        "epcis_epcs_in_epc_lists": epcs,
        "epcis_events": count,
        "epcis_document_bytes": size,
        "epcis_build_s": round(built_s, 2),
        "epcis_export_median_s": round(statistics.median(times), 4),
        "epcis_export_max_s": round(worst, 4),
        "epcis_export_target_s": TARGET_EXPORT_S,
        "epcis_export_met": worst <= TARGET_EXPORT_S,
        "epcis_ceiling_dumps_median_s": round(statistics.median(dumps), 4),
        "epcis_export_ratio_to_ceiling": round(
            statistics.median(dumps) / statistics.median(times), 4
        ),
    }


def epcis_query_every_lot(lots_n: int, repeat: int) -> dict[str, Any]:
    """Time a query without MATCH_ parameters (GET /epcis/events?EQ_bizStep=commissioning)
    over `lots_n` commissioned lots: every lot's events are built (cloud/services/epcis.py
    says so), the cost a partner avoids by naming its lots."""
    from cloud.contracts import epcis_query

    ledger = _Ledger()
    ledger.admit("M", "manufacturer", T0)
    for n in range(lots_n):
        args = {"gtin": GTIN, "lot": f"Q{n}", "expiry": "281200", "quantity": 10}
        ledger.lots("M", "commission", {**args, "unit": "pack", "profile": PROFILE}, T0 + n)
    maker = participants.identify(ledger.state, ledger.did("M"))
    reader = epcis.Reader(maker.role, maker.id, lambda g, lot, who: True)
    query = epcis_query.parse({"EQ_bizStep": ["commissioning"]})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        events = []
        for gtin, number in ledger.index.touches:
            found = ledger.index.ledger(gtin, number, ledger.txs, lambda: None)
            events += epcis.events_of(ledger.state, found, reader, T0)
        shown, _ = epcis_query.page(epcis.merge(events), query)
        json.dumps(epcis.query_document(shown, T0))
        times.append(time.perf_counter() - start)
    return {"epcis_query_lots": lots_n, "epcis_query_every_lot_median_s": round(
        statistics.median(times), 4)}  # fmt: skip

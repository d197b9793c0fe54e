"""The pharmacy counter's check of a pack (docs/contracts.md §6, "At the counter"): the
verdict on a scanned pack at the log's latest state, for a signed-in participant or
regulator, as the read matrix lets it see who decommissioned it and when (R→P: dispenses).
Decommission, undo and suspect reports are transactions (POST /v1/tx); this is a read.

A scan arrives split into its fields (gtin, serial, lot, expiry YYMMDD), or as the raw
`scan` text: a GS1 element string (GS separators, optional symbology identifier), its
human-readable form or a Digital Link URI, parsed by `parse_raw_scan` (the GS1 parsers'
entry point, digital_link.scan_from_any). Raises LedgerError (refusals.py): 400 naming the
field (a scan's parser refusal names the AI and why), 401 "token", 403 "participant".
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloud.contracts import (
    access,
    auth,
    digital_link,
    gs1,
    lots_fields,
    pack_facts,
    participants,
    policy,
)
from cloud.services.contracts import ContractService, Head
from cloud.services.shared import Shared
from gateway.refusal import Refused

SCAN_MAX = 512  # characters of a raw scan: a Digital Link URI with its attributes


@dataclass(frozen=True)
class Scan:
    """What a scanner read of a pack: GTIN-14 and serial; lot and expiry (AI 17 YYMMDD) as
    the label carries them, None if the scan had none; the raw text if it came as one."""

    gtin: str
    serial: str
    lot: str | None
    expiry: str | None
    raw: str | None = None


# A parser of raw scans (element string or Digital Link URI) read on `today`: returns the
# fields, raises ValueError naming what is wrong.
ScanParser = Callable[[str, datetime.date], Scan]


@dataclass(frozen=True)
class Checked:
    """A verdict as one reader may see it, at the state it was read."""

    head: Head
    scan: Scan
    verdict: pack_facts.Verdict
    decommission: dict[str, Any] | None
    withheld: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        facts = v.facts
        pack = None
        if facts is not None:
            pack = {
                "registered_lot": facts.registered_lot,
                "lot": facts.lot,
                "expiry": facts.expiry,
                "status": facts.status,
                "quality": facts.quality,
                "recall": facts.recall,
            }
        return {
            "gtin": self.scan.gtin,
            "serial": self.scan.serial,
            "scanned": {"lot": self.scan.lot, "expiry": self.scan.expiry, "raw": self.scan.raw},
            "verdict": v.code,
            "dispensable": v.dispensable,
            "suspect": v.suspect,
            "reasons": list(v.reasons),
            "pack": pack,
            "decommission": self.decommission,
            "withheld": self.withheld,
            "state": self.head.to_json(),
        }


def parse_raw_scan(raw: str, today: datetime.date) -> Scan:
    """Return the fields of a raw scan read on `today` (digital_link.scan_from_any: element
    string, human-readable form or Digital Link URI). Raises gs1.Gs1Error (a ValueError)
    naming the AI and the reason: bad check digit, unknown AI, a value too long or outside
    set 82, a missing GS separator, or no serial (AI 21: the counter checks packs)."""
    read = digital_link.scan_from_any(raw, today)
    if read.serial is None:
        want = "a serial (AI 21): the counter checks packs"
        if read.lot is not None and gs1.AI_SERIAL in read.lot[1:-1]:  # 10ABC21XYZ: one lot
            want += f"; a GS/FNC1 separator missing after AI 10 {read.lot!r}?"
        raise gs1.Gs1Error(gs1.AI_SERIAL, "no AI 21", want)
    return Scan(read.gtin, read.serial, read.lot, read.expiry_yymmdd, raw)


def _field(body: Mapping[str, Any], name: str, check: Callable[[str], str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not str:
        raise Refused(name, f"{name}: got {type(value).__name__}, want a string", 400)
    try:
        return check(value)
    except ValueError as e:
        raise Refused(name, f"{name}: {e}", 400) from None


def read_scan(body: object, today: datetime.date, parse: ScanParser | None) -> Scan:
    """Return the scan a request body describes: {"gtin", "serial", "lot"?, "expiry"?} or
    {"scan": raw text} (parsed by `parse`; fields given beside it must agree). Raises
    Refused 400 naming the field."""
    if type(body) is not dict:
        raise Refused("body", "body: want an object {gtin, serial, lot?, expiry?, scan?}", 400)
    extra = sorted(body.keys() - {"gtin", "serial", "lot", "expiry", "scan"})
    if extra:
        raise Refused("body", f"body: unknown members {extra!r:.200}", 400)
    raw = body.get("scan")
    if raw is not None:
        if type(raw) is not str or not 1 <= len(raw) <= SCAN_MAX:
            raise Refused("scan", f"scan: want 1 to {SCAN_MAX} characters", 400)
        if parse is None:
            detail = "scan: raw scans are not parsed by this server yet; send gtin and serial"
            raise Refused("scan", detail, 400)
        try:
            parsed = parse(raw, today)
        except ValueError as e:
            raise Refused("scan", f"scan: {e}", 400) from None
        for name in ("gtin", "serial", "lot", "expiry"):
            if name in body and body[name] != getattr(parsed, name):
                raise Refused(name, f"{name}: the scan says {getattr(parsed, name)!r}", 400)
        return Scan(parsed.gtin, parsed.serial, parsed.lot, parsed.expiry, raw)
    gtin = _field(body, "gtin", lots_fields.gtin14)
    serial = _field(body, "serial", gs1.serial)
    if gtin is None or serial is None:
        raise Refused("gtin" if gtin is None else "serial", "want gtin and serial (or scan)", 400)
    lot = _field(body, "lot", gs1.lot)
    expiry = _field(body, "expiry", lambda v: gs1.expiry(v, today).yymmdd)
    return Scan(gtin, serial, lot, expiry)


class PackService:
    """The counter's check over the contract service's state (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService) -> None:
        self.shared = shared
        self.contracts = contracts
        self.parse_scan: ScanParser | None = parse_raw_scan  # None: raw scans refused

    async def verify(
        self, body: object, reader: auth.Token | None, now_ms: int | None = None
    ) -> Checked:
        """Return the verdict on the scan in `body` (read_scan) at the log's latest state and
        the server's time, for `reader`. Raises LedgerError 400 (the field), 401 "token"
        (no token: the counter's check is for participants; the public resolves the Digital
        Link), 403 "participant"."""
        refusals = self.shared.refusals
        if reader is None:
            raise refusals.refuse("token", "the counter's check needs a bearer token", 401)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            scan = read_scan(body, gs1.today_of_ms(now_ms), self.parse_scan)
        except Refused as e:
            raise refusals.of(e) from None
        head = await self.contracts.current()  # then no await: one state throughout
        state = self.contracts.state
        try:
            role = participants.identify(state, reader.did).role
        except Refused as e:
            raise refusals.of(e) from None
        verdict = pack_facts.check(state, scan.gtin, scan.serial, scan.lot, scan.expiry, now_ms)
        facts, shown, withheld = verdict.facts, None, {}
        if facts is not None and facts.by is not None:
            if policy.reads(role, access.R_TO_P):
                by = participants.by_id(state, facts.by)
                shown = {"status": facts.status, "since": facts.since, "by": by["did"]}
            else:
                withheld = {access.R_TO_P: access.cell(role, access.R_TO_P, "read")}
        return Checked(head, scan, verdict, shown, withheld)

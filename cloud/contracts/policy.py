"""Read policy (docs/contracts.md §5): which of a lot's private facts a signed-in reader
sees, decided by the read matrix (cloud/contracts/access.py READ) and, for "if involved",
by the lot's custody chain (cloud/contracts/lots.py `involved`). One place, never the
routes. Pure: the caller passes the role and whether the reader is involved.

Custody (who held, shipped or received the lot, its quantity, parent and children, the
shipments in transit) spans the three legs M→D, D→R and R→P, so it is shown to a reader
whose role reads every leg's shipments (`yes` in all three: a manufacturer, a distributor,
the operator team) or who is involved in the lot's chain; to nobody else (the public, a
regulator, whose leg cells are `no`, a retailer or pharmacy outside the chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cloud.contracts import access
from cloud.contracts.facts import LotFacts

LEGS: Final = (access.M_TO_D, access.D_TO_R, access.R_TO_P)


def sees_custody(role: str, involved: bool) -> bool:
    """Whether a reader of `role` (a row of access.READ, "public" for no token) sees a lot's
    custody record; `involved`: whether it is in the lot's custody chain. Raises KeyError
    for a role the matrix has no row for."""
    cells = [access.READ[role][leg] for leg in LEGS]
    if all(c == access.YES for c in cells):
        return True
    return involved and any(c != access.NO for c in cells)


# The read side for every column (docs/contracts.md §5, "Reads"): each function takes the
# reader's role (a row of access.READ, "public" without a token), who it is where that
# matters (its participant id; None for the public) and the unfiltered facts
# (cloud/contracts/facts.py), and returns what it may see. A column not shown is named in
# `withheld` by its cell ("read: retailer × M→D = no"), so a reader learns why, never what.


def reads(role: str, column: str, involved: bool = False) -> bool:
    """Whether a reader of `role` sees `column`'s records in full: its cell is yes, or if
    involved and `involved` (it is in the lot's custody chain, lots.involved)."""
    value = access.READ[role][column]
    return value == access.YES or (value == access.IF_INVOLVED and involved)


def _withheld(role: str, column: str) -> dict[str, str]:
    return {column: access.cell(role, column, "read")}


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """A participant's identity columns: its current DID, role, name, region and licence."""
    keys = ("did", "role", "name", "region", "licence")
    return {k: record[k] for k in keys}


def validity(certificate: dict[str, Any]) -> dict[str, Any]:
    """A certificate's validity facts, what "restricted" shows of others' certificates: no
    issuer, no document, not why it was revoked, and not its subject's id (the DID it was
    admitted with, which would tie a rotated key to its successor): the reader named the
    subject to find it."""
    keys = ("id", "kind", "valid_from", "valid_until")
    return {**{k: certificate[k] for k in keys}, "revoked": certificate["revoked"] is not None}


def certificate_view(
    role: str, reader: str | None, certificate: dict[str, Any]
) -> dict[str, Any] | None:
    """A certificate as the compliance cell shows it: yes, or restricted and the reader is
    its subject: in full; restricted: its validity facts; None when withheld."""
    value = access.READ[role][access.COMPLIANCE]
    if value == access.YES or (value == access.RESTRICTED and certificate["subject"] == reader):
        return certificate
    return validity(certificate) if value == access.RESTRICTED else None


def _box(window: dict[str, Any]) -> dict[str, Any]:
    """A box on a lot as quality status shows it: when, and its calibration; not which
    shipment or holder it rode with (those are the flows' and the entities')."""
    calibration = window["calibration"]
    if calibration is not None:
        calibration = {k: calibration[k] for k in ("offset_cc", "date", "due")}
    keys = ("box", "start", "end")
    return {**{k: window[k] for k in keys}, "calibration": calibration}


def lot_view(
    role: str, involved: bool, facts: LotFacts, reader: str | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any] | None]:
    """Return (columns, withheld, custody) of a lot for a reader of `role` (`involved`: in
    the lot's custody chain; `reader`: its participant id): each lot column it may read, by
    column name; the cells of those it may not; the custody record if sees_custody allows
    (else None), cut to the legs it reads (_custody)."""
    shown = [leg for leg in LEGS if reads(role, leg)]
    maker = reads(role, access.MANUFACTURER_IDENTITY)
    views = {
        access.PRODUCT: _product(role, facts),
        access.QUALITY: _quality(role, involved, facts),
        **{leg: _flow(leg, facts) if leg in shown else None for leg in LEGS},
        access.ORDERS: _orders(shown, facts) if reads(role, access.ORDERS, involved) else None,
        access.COMPLIANCE: _lot_compliance(role, facts),
        access.MANUFACTURER_IDENTITY: identity(facts.manufacturer) if maker else None,
    }
    columns: dict[str, Any] = {}
    withheld: dict[str, str] = {}
    for column, view in views.items():
        if view is None:
            withheld |= _withheld(role, column)
        else:
            columns[column] = view
    custody = _custody(shown, reader, facts) if sees_custody(role, involved) else None
    return columns, withheld, custody


def _custody(shown: list[str], reader: str | None, facts: LotFacts) -> dict[str, Any]:
    """The custody record as a reader who reads the legs `shown` sees it: its shipments in
    transit only on those legs, and of the ids in its chain only those a shipment on those
    legs names, the manufacturer and the reader itself (a retailer does not learn, from a
    parent lot, which distributor the manufacturer shipped to)."""
    visible = [s for s in facts.shipments if s["leg"] in shown]
    ids = {facts.lot["manufacturer"], reader}
    ids |= {s[k] for s in visible for k in ("sender_id", "receiver_id")}
    moving = {s["shipment"] for s in visible}
    custody = facts.custody
    return {
        **custody,
        "in_transit": [s for s in custody["in_transit"] if s in moving],
        "involved": [i for i in custody["involved"] if len(shown) == len(LEGS) or i in ids],
    }


def _product(role: str, facts: LotFacts) -> dict[str, Any] | None:
    """yes: the lot record, its parent and children, how many lots of its GTIN exist;
    global only: the same without the lineage."""
    value = access.READ[role][access.PRODUCT]
    figures = {"lot": facts.lot, "lots_of_gtin": facts.lots_of_gtin}
    if value == access.YES:
        custody = facts.custody
        return {**figures, "parent": custody["parent"], "children": custody["children"]}
    return figures if value == access.GLOBAL_ONLY else None


def _quality(role: str, involved: bool, facts: LotFacts) -> dict[str, Any] | None:
    """yes, or if involved and involved: the quality record, the recall, the cold-chain
    verdict and the boxes on the lot; global only: the status and whether recalled."""
    if reads(role, access.QUALITY, involved):
        return {
            "status": facts.quality,
            "recall": facts.recall,
            "coldchain": facts.coldchain,
            "boxes": [_box(b) for b in facts.boxes],
        }
    if access.READ[role][access.QUALITY] == access.GLOBAL_ONLY:
        return {"status": facts.quality["status"], "recalled": facts.recall is not None}
    return None


def _flow(leg: str, facts: LotFacts) -> dict[str, Any]:
    """A leg's shipments of the lot (and, on R→P, the units dispensed), without order
    references (PO/invoices is its own column)."""
    keys = ("shipment", "sender", "receiver", "quantity", "shipped", "status", "counted")
    moves = [s for s in facts.shipments if s["leg"] == leg]
    flow: dict[str, Any] = {
        "shipments": [{k: s.get(k) for k in (*keys, "received")} for s in moves]
    }
    if leg == access.R_TO_P:
        flow["dispensed"] = facts.custody["dispensed"]
    return flow


def _orders(shown: list[str], facts: LotFacts) -> list[dict[str, Any]]:
    """The order references of the lot's shipments on the legs `shown` to the reader: a
    reference names its shipment, which the leg's cell guards. The sender's is `order_ref`,
    the receiver's own purchase order (given when it received) `receiver_order_ref`."""
    refs: list[dict[str, Any]] = []
    for s in facts.shipments:
        if s["leg"] not in shown:
            continue
        if s["order_ref"] is not None:
            refs.append({"shipment": s["shipment"], "order_ref": s["order_ref"]})
        if s.get("receiver_order_ref") is not None:
            refs.append({"shipment": s["shipment"], "receiver_order_ref": s["receiver_order_ref"]})
    return refs


def _lot_compliance(role: str, facts: LotFacts) -> dict[str, Any] | None:
    """The lot's compliance facts: its recall (a public record, on the pack: in full for
    every reader of the column) and its certificates as certificate_view shows them."""
    value = access.READ[role][access.COMPLIANCE]
    if value not in (access.YES, access.RESTRICTED):
        return None
    shown = [certificate_view(role, None, c) for c in facts.certificates]
    return {"recall": facts.recall, "certificates": shown}


def identity_column(record: dict[str, Any]) -> str:
    """The column a participant record's identity belongs to: manufacturer identity for a
    manufacturer, entities' identity for every other role."""
    if record["role"] == "manufacturer":
        return access.MANUFACTURER_IDENTITY
    return access.ENTITIES_IDENTITY


def participant_view(
    role: str, reader: str | None, record: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (columns, withheld) of one participant record for a reader of `role` whose
    participant id is `reader`. Identity (its column by the record's role): yes, or own
    only and it is the reader's own. Compliance (admission and suspension): yes, or the
    reader's own: status, since and reason; restricted: whether it is active or suspended."""
    columns: dict[str, Any] = {}
    withheld: dict[str, str] = {}
    own = reader is not None and reader == record["id"]
    column = identity_column(record)
    value = access.READ[role][column]
    if value == access.YES or (value == access.OWN_ONLY and own):
        columns[column] = identity(record)
    else:
        withheld |= _withheld(role, column)
    value = access.READ[role][access.COMPLIANCE]
    if value == access.YES or (value == access.RESTRICTED and own):
        columns[access.COMPLIANCE] = {k: record[k] for k in ("status", "since", "reason")}
    elif value == access.RESTRICTED:
        columns[access.COMPLIANCE] = {"status": record["status"]}
    else:
        withheld |= _withheld(role, access.COMPLIANCE)
    return columns, withheld


def directory(role: str, reader: str | None, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The participants a reader of `role` may list (GET /v1/participants): each record whose
    identity it reads (participant_view), and, where its entities' identity cell is global
    only, the counts of the other roles' participants per role and region; `withheld`
    names the identity cells that kept records out."""
    listed = []
    withheld: dict[str, str] = {}
    for record in records:
        columns, hidden = participant_view(role, reader, record)
        if identity_column(record) in columns:
            listed.append({"did": record["did"], "columns": columns})
        else:
            withheld |= {k: v for k, v in hidden.items() if k == identity_column(record)}
    answer: dict[str, Any] = {"participants": listed, "withheld": withheld}
    if access.READ[role][access.ENTITIES_IDENTITY] == access.GLOBAL_ONLY:
        counts: dict[str, dict[str, int]] = {}
        for record in records:
            if identity_column(record) == access.ENTITIES_IDENTITY:
                per_region = counts.setdefault(record["role"], {})
                per_region[record["region"]] = per_region.get(record["region"], 0) + 1
        answer["counts"] = counts
    return answer


# The recall trace (GET /v1/lots/{gtin}/{lot}/trace; cloud/contracts/lots_trace.py).


@dataclass(frozen=True)
class TraceAccess:
    """What a reader sees of a recall trace: the holders, shipments and dispenses of `legs`
    (lots_trace.visible), or, with `global_only`, the figures counted per role and region
    (lots_trace.figures)."""

    legs: frozenset[str]
    global_only: bool


def trace_access(role: str, involved: bool, error: access.Refusal) -> TraceAccess:
    """Decide what a reader of `role` ("public" without a token) sees of a lot's trace;
    `involved`: whether it is in the lot's custody chain (lots.involved).

    A trace is compliance data ("recalls and their traces", docs/contracts.md §5) made of
    flows: `yes` on compliance reads it, `restricted` only for a lot the reader is involved
    in (its "recalls of lots it is involved in"). Then it sees the holders and shipments of
    each leg whose cell is `yes` (or `if involved`, being involved); a reader with no such
    leg but `global only` on entities' identity (the regulator) gets the figures. Raises
    error("access", the denying cell) otherwise: the public, an uninvolved distributor,
    retailer or pharmacy, the operator team (never in a chain)."""
    cells = access.READ[role]
    compliance = cells[access.COMPLIANCE]
    if compliance == access.NO or (compliance == access.RESTRICTED and not involved):
        because = "" if compliance == access.NO else ": not in this lot's custody chain"
        raise error("access", access.cell(role, access.COMPLIANCE, "read") + because)
    legs = frozenset(
        leg
        for leg in LEGS
        if cells[leg] == access.YES or (cells[leg] == access.IF_INVOLVED and involved)
    )
    if legs:
        return TraceAccess(legs, global_only=False)
    if cells[access.ENTITIES_IDENTITY] == access.GLOBAL_ONLY:
        return TraceAccess(frozenset(), global_only=True)
    raise error("access", access.cell(role, access.M_TO_D, "read"))


# -- a lot's history (GET /v1/lots/{gtin}/{lot}/history) ------------------------------------

COLDCHAIN: Final = "coldchain"  # the cold chain, each leg's custody as sees_leg allows
STATUS: Final = "status"  # the lot's quality status alone


def history_view(role: str, involved: bool) -> str | None:
    """What of a lot's history a reader of `role` sees (a row of access.READ, "public" for
    no token); `involved`: whether it is in the lot's custody chain. The quality-status
    cell decides: `yes`, or `if involved` for a reader in the chain, sees the cold chain
    (COLDCHAIN: figures per leg and overall, excursions, gaps, calibration flags; who held
    each leg as sees_leg says); `global only` (the public) the status its record already
    shows (STATUS); anyone else nothing (None: refused, read_denied names the cell).
    Raises KeyError for a role the matrix has no row for."""
    if reads(role, access.QUALITY, involved):
        return COLDCHAIN
    if access.READ[role][access.QUALITY] == access.GLOBAL_ONLY:
        return STATUS
    return None


def sees_leg(role: str, involved: bool, column: str | None, holder: bool) -> bool:
    """Whether a reader who sees a lot's cold chain also sees who held one of its legs (the
    shipment, sender, receiver and boxes): a shipment on flow `column` as that column's
    cell allows (`yes`, or `if involved` in the chain); a holder's storage (column None) if
    the reader is that holder (`holder`) or its role reads every leg's shipments."""
    if column is None:
        return holder or all(access.READ[role][leg] == access.YES for leg in LEGS)
    return reads(role, column, involved)


def read_denied(role: str) -> str:
    """The detail of a refused history read: the cell that denies it (access.cell), and why
    an `if involved` cell does."""
    why = " (not in the lot's custody chain)"
    involved_only = access.READ[role][access.QUALITY] == access.IF_INVOLVED
    return access.cell(role, access.QUALITY, "read") + (why if involved_only else "")


# -- stock and shortage (GET /v1/stock; cloud/contracts/stock.py) ---------------------------


@dataclass(frozen=True)
class StockAccess:
    """What a reader sees of a GTIN's stock: `figures`, the units of every holder role (no
    participant named); `own`, its own holdings and shipments; `minimum`, the regulator's
    minimum and whether stock is below it. `withheld` names the cells that keep the rest
    out ({"figures": "read: retailer × M→D = no"})."""

    figures: bool
    own: bool
    minimum: bool
    withheld: dict[str, str]


def stock_access(role: str, error: access.Refusal) -> StockAccess:
    """Decide what a reader of `role` ("public" without a token) sees of stock.

    Units held count as data of the leg they came on, units in transit of theirs, dispenses
    of R→P (docs/contracts.md §5, recall trace). The figures of every holder role are the
    legs' data counted: shown to a reader whose three leg cells are `yes` (manufacturer,
    distributor, operator team), or who reads no leg but global figures (`global only` on
    entities' identity: the regulator). A trading role (one with a leg out or in) reads its
    own holdings and shipments: its own, on legs it reads `yes`. The minimum is compliance
    data (cell `yes`: the regulator, a manufacturer). Raises error("access", the cell)
    for a reader who would see nothing: the public."""
    cells = access.READ[role]
    every_leg = all(cells[leg] == access.YES for leg in LEGS)
    no_leg = all(cells[leg] == access.NO for leg in LEGS)
    figures = every_leg or (no_leg and cells[access.ENTITIES_IDENTITY] == access.GLOBAL_ONLY)
    own = role in access.OUTBOUND or role in access.INBOUND
    if not (figures or own):
        raise error("access", access.cell(role, access.M_TO_D, "read"))
    withheld: dict[str, str] = {}
    if not figures:
        leg = next(leg for leg in LEGS if cells[leg] != access.YES)
        withheld["figures"] = access.cell(role, leg, "read")
    minimum = cells[access.COMPLIANCE] == access.YES
    if not minimum:
        withheld["minimum"] = access.cell(role, access.COMPLIANCE, "read")
    return StockAccess(figures, own, minimum, withheld)

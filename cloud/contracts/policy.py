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
from typing import Final

from cloud.contracts import access

LEGS: Final = (access.M_TO_D, access.D_TO_R, access.R_TO_P)


def sees_custody(role: str, involved: bool) -> bool:
    """Whether a reader of `role` (a row of access.READ, "public" for no token) sees a lot's
    custody record; `involved`: whether it is in the lot's custody chain. Raises KeyError
    for a role the matrix has no row for."""
    cells = [access.READ[role][leg] for leg in LEGS]
    if all(c == access.YES for c in cells):
        return True
    return involved and any(c != access.NO for c in cells)


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

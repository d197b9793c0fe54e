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


# -- a lot's history (GET /v1/lots/{gtin}/{lot}/history) ------------------------------------

FULL: Final = "full"  # the cold chain with its legs' custody: shipments, parties, boxes
FIGURES: Final = "figures"  # the cold chain, legs named by their order only
STATUS: Final = "status"  # the lot's quality status alone


def history_view(role: str, involved: bool) -> str | None:
    """What of a lot's history a reader of `role` sees (a row of access.READ, "public" for
    no token); `involved`: whether it is in the lot's custody chain. The quality-status
    cell decides the cold chain (figures per leg and overall, excursions, gaps,
    calibration flags): `yes`, or `if involved` for a reader in the chain. Who held it on
    each leg (shipment ids, senders, receivers, boxes) follows sees_custody. Return FULL,
    FIGURES (the cold chain without custody: the regulator), STATUS (`global only`: the
    public sees the status its record already shows) or None (refused: `no`, or `if
    involved` outside the chain). Raises KeyError for a role the matrix has no row for."""
    cell = access.READ[role][access.QUALITY]
    if cell == access.YES or (cell == access.IF_INVOLVED and involved):
        return FULL if sees_custody(role, involved) else FIGURES
    if cell == access.GLOBAL_ONLY:
        return STATUS
    return None


def read_denied(role: str) -> str:
    """The detail of a refused history read: the cell that denies it."""
    cell = access.READ[role][access.QUALITY]
    why = " (not in the lot's custody chain)" if cell == access.IF_INVOLVED else ""
    return f"read: {role} × {access.TITLES[access.QUALITY]} = {cell}{why}"

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

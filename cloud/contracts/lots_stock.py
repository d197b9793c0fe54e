"""The regulator's stock minimum per GTIN (docs/contracts.md §5, "Stock and shortage"): the
`stock-minimum` transaction of the lots contract and its record. What the stock of a GTIN
is, and the shortage alert raised when it falls below the minimum, are derived beside the
State by cloud/contracts/stock.py.

Record of contract "lots" (type bytes 20 and up are this module's):

    MINIMUM   private (gtin)   {"gtin", "minimum" (units, >= 1), "since" (ms)}
                               absent when no minimum is set (a minimum of 0 clears it)

Private: the threshold is the regulator's compliance data (compliance column), not a fact
on the pack.
"""

from __future__ import annotations

from typing import Final

from cloud.contracts import args, lots, lots_fields
from cloud.contracts.engine import Conflict, Context, Forbidden, RecordType

MINIMUM: Final = RecordType(lots.NAME, 20, "stock minimum", private=True)
TX_TYPE: Final = "stock-minimum"


def stock_minimum(ctx: Context) -> None:
    """Set the regulator's minimum stock of a GTIN: args gtin (GTIN-14, check digit),
    minimum (units, 0 to 2**53 - 1; 0 clears it). The regulator only (Forbidden "role":
    a manufacturer's compliance cell is `yes`, but the minimum is the regulator's).
    Conflict "no minimum" when clearing a GTIN that has none (it would change nothing)."""
    args.exact(ctx.args, ("gtin", "minimum"))
    if ctx.me.role != "regulator":
        raise Forbidden("role", f"{TX_TYPE}: the regulator's, not a {ctx.me.role}'s")
    gtin = args.checked(ctx.args, "gtin", lots_fields.gtin14)
    minimum = args.integer(ctx.args, "minimum", minimum=0)
    if minimum == 0:
        if ctx.get(MINIMUM, gtin) is None:
            raise Conflict("no minimum", f"GTIN {gtin} has no stock minimum to clear")
        ctx.delete(MINIMUM, gtin)
        return
    ctx.put(MINIMUM, [gtin], {"gtin": gtin, "minimum": minimum, "since": ctx.time})


# Joined into the one "lots" contract by cloud/contracts/catalog.py.
RULES: Final = {TX_TYPE: stock_minimum}

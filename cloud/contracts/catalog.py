"""The contracts the ledger runs, and the engine over them: what the contract service,
`pharmasync verify --replay` and a replaying witness all build, so they apply the same rules."""

from __future__ import annotations

from typing import Final

from cloud.contracts import (
    certificates,
    epcis_statement,
    lots,
    lots_boxes,
    lots_stock,
    packs,
    participants,
)
from cloud.contracts.engine import Contract, Engine

# packs.RULES last: its `split` replaces lots.split (it calls it, then moves the packs)
LOTS: Final = Contract(
    lots.NAME,
    {
        **lots.RULES,
        **lots_boxes.RULES,
        **certificates.RULES,
        **lots_stock.RULES,  # the regulator's stock minimum
        **epcis_statement.RULES,  # a partner's signed EPCIS statement
        **packs.RULES,
    },
)
CONTRACTS: Final[tuple[Contract, ...]] = (participants.CONTRACT, LOTS)


def engine() -> Engine:
    """Return an engine over CONTRACTS that knows signers by participants.identify."""
    return Engine(CONTRACTS, participants.identify)

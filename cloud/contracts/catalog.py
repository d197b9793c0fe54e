"""The contracts the ledger runs, and the engine over them: what the contract service,
`pharmasync verify --replay` and a replaying witness all build, so they apply the same rules."""

from __future__ import annotations

from typing import Final

from cloud.contracts import (
    certificates,
    epcis_statement,
    gs1_prefixes,
    lots,
    lots_boxes,
    lots_stock,
    packs,
    participants,
)
from cloud.contracts.engine import Contract, Engine

# packs.RULES last: its `split` and `ship` replace lots' (each calls it, then moves or names
# the packs)
LOTS: Final = Contract(
    lots.NAME,
    {
        **lots.RULES,
        **lots_boxes.RULES,
        **certificates.RULES,
        **lots_stock.RULES,  # the regulator's stock minimum
        **epcis_statement.RULES,  # a partner's signed EPCIS statement
        **gs1_prefixes.RULES,  # a manufacturer's GS1 company prefixes (EPC URNs)
        **packs.RULES,
    },
)
CONTRACTS: Final[tuple[Contract, ...]] = (participants.CONTRACT, LOTS)


def engine() -> Engine:
    """Return an engine over CONTRACTS that knows signers by participants.identify."""
    return Engine(CONTRACTS, participants.identify)

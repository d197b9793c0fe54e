"""The contracts the ledger runs, and the engine over them: what the contract service,
`pharmasync verify --replay` and a replaying witness all build, so they apply the same rules."""

from __future__ import annotations

from typing import Final

from cloud.contracts import certificates, epcis_statement, lots, lots_boxes, participants
from cloud.contracts.engine import Contract, Engine

LOTS: Final = Contract(
    lots.NAME,
    {
        **lots.RULES,
        **lots_boxes.RULES,
        **certificates.RULES,
        **epcis_statement.RULES,  # a partner's signed EPCIS statement
    },
)
CONTRACTS: Final[tuple[Contract, ...]] = (participants.CONTRACT, LOTS)


def engine() -> Engine:
    """Return an engine over CONTRACTS that knows signers by participants.identify."""
    return Engine(CONTRACTS, participants.identify)

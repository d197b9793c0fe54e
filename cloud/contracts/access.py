"""The access matrices of DESIGN.md ("Access to lot data", the PharmaSync paper's Appendix B)
as data, and the write side of the policy: which column each transaction type writes, per
docs/contracts.md §5, and the refusal naming the cell that denies it.

The tables equal ../shared/vectors/access-matrix.json cell by cell (a test checks it). The
read side (cloud/contracts/policy.py, the policy that filters each query's fields) uses READ
and COLUMNS; what each column covers is in COVERS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, NoReturn

# The stakeholders (rows): six roles a participant can hold, and the public (no key).
ROLES: Final = (
    "manufacturer",
    "distributor",
    "retailer",
    "pharmacy",
    "operator_team",
    "regulator",
)
STAKEHOLDERS: Final = (*ROLES, "public")

PRODUCT: Final = "product"
QUALITY: Final = "quality_status"
M_TO_D: Final = "flow_m_to_d"
D_TO_R: Final = "flow_d_to_r"
R_TO_P: Final = "flow_r_to_p"
ORDERS: Final = "purchase_orders_invoices"
COMPLIANCE: Final = "compliance_regulatory"
MANUFACTURER_IDENTITY: Final = "manufacturer_identity"
ENTITIES_IDENTITY: Final = "entities_identity"
COLUMNS: Final = (
    PRODUCT,
    QUALITY,
    M_TO_D,
    D_TO_R,
    R_TO_P,
    ORDERS,
    COMPLIANCE,
    MANUFACTURER_IDENTITY,
    ENTITIES_IDENTITY,
)

# How a refusal names a column (docs/contracts.md §5).
TITLES: Final = {
    PRODUCT: "product",
    QUALITY: "quality status",
    M_TO_D: "M→D",
    D_TO_R: "D→R",
    R_TO_P: "R→P",
    ORDERS: "PO/invoices",
    COMPLIANCE: "compliance",
    MANUFACTURER_IDENTITY: "manufacturer identity",
    ENTITIES_IDENTITY: "entities' identity",
}

# What each column covers in this product (docs/contracts.md §5): the read policy's guide.
COVERS: Final = {
    PRODUCT: "a lot's identity (GTIN, lot, expiry, unit, profile, manufacturer), child lots exist",
    QUALITY: "released/quarantined/rejected, holds, damage reports, excursions, cold chain",
    M_TO_D: "shipments manufacturer → distributor",
    D_TO_R: "shipments distributor → retailer",
    R_TO_P: "shipments retailer → pharmacy, and dispenses",
    ORDERS: "the order reference a shipment carries",
    COMPLIANCE: "admissions, suspensions, certificates, recalls and traces, dispositions",
    MANUFACTURER_IDENTITY: "a manufacturer's participant record",
    ENTITIES_IDENTITY: "participant records of distributors, retailers, pharmacies, operators",
}

YES: Final = "yes"
NO: Final = "no"
IF_INVOLVED: Final = "if_involved"
RESTRICTED: Final = "restricted"
GLOBAL_ONLY: Final = "global_only"
OWN_ONLY: Final = "own_only"
WRITABLE: Final = frozenset({YES, OWN_ONLY})  # own only: the rule checks it is the signer's


def _row(*values: str) -> dict[str, str]:
    assert len(values) == len(COLUMNS)
    return dict(zip(COLUMNS, values, strict=True))


_Y, _N, _I, _R, _G, _O = YES, NO, IF_INVOLVED, RESTRICTED, GLOBAL_ONLY, OWN_ONLY

# Columns in order: product, quality, M→D, D→R, R→P, PO, compliance, manufacturer id, entities id
READ: Final[Mapping[str, Mapping[str, str]]] = {
    "manufacturer": _row(_Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y, _Y),
    "distributor": _row(_Y, _I, _Y, _Y, _Y, _I, _R, _Y, _O),
    "retailer": _row(_Y, _I, _N, _Y, _Y, _I, _R, _Y, _O),
    "pharmacy": _row(_Y, _I, _N, _N, _Y, _I, _R, _Y, _O),
    "operator_team": _row(_Y, _Y, _Y, _Y, _Y, _N, _R, _Y, _O),
    "regulator": _row(_G, _Y, _N, _N, _N, _N, _Y, _Y, _G),
    "public": _row(_G, _G, _N, _N, _N, _N, _R, _Y, _N),
}
WRITE: Final[Mapping[str, Mapping[str, str]]] = {
    "manufacturer": _row(_Y, _Y, _Y, _N, _N, _Y, _Y, _Y, _N),
    "distributor": _row(_N, _Y, _Y, _Y, _N, _Y, _N, _N, _O),
    "retailer": _row(_N, _Y, _N, _Y, _Y, _Y, _N, _N, _O),
    "pharmacy": _row(_N, _N, _N, _N, _Y, _Y, _N, _N, _O),
    "operator_team": _row(_N, _N, _N, _N, _N, _N, _N, _N, _O),
    "regulator": _row(_N, _N, _N, _N, _N, _N, _Y, _N, _N),
    "public": _row(_N, _N, _N, _N, _N, _N, _N, _N, _N),
}

# The leg a role ships on, and the leg it receives on (docs/contracts.md §4: legs follow
# from the roles).
OUTBOUND: Final = {"manufacturer": M_TO_D, "distributor": D_TO_R, "retailer": R_TO_P}
INBOUND: Final = {"distributor": M_TO_D, "retailer": D_TO_R, "pharmacy": R_TO_P}
# The receiver's role for each sender's role.
NEXT_ROLE: Final = {
    "manufacturer": "distributor",
    "distributor": "retailer",
    "retailer": "pharmacy",
}

# Each transaction type's column (docs/contracts.md §5, "Writes"): one column for every role,
# or per role, where "*" is every role not named. A role with no entry has no column for the
# type (a pharmacy ships on no leg) and is refused.
_PerRole = Mapping[str, str]
TX_COLUMNS: Final[Mapping[tuple[str, str], _PerRole]] = {
    ("participants", "admit"): {"*": COMPLIANCE},
    ("participants", "suspend"): {"*": COMPLIANCE},
    ("participants", "reinstate"): {"*": COMPLIANCE},
    ("participants", "rotate"): {
        "regulator": COMPLIANCE,  # rotating a lost key
        "manufacturer": MANUFACTURER_IDENTITY,
        "*": ENTITIES_IDENTITY,
    },
    ("lots", "commission"): {"*": PRODUCT},
    ("lots", "ship"): OUTBOUND,
    ("lots", "receive"): INBOUND,
    ("lots", "split"): {**INBOUND, "*": PRODUCT},
    ("lots", "dispense"): {"*": R_TO_P},
    ("lots", "hold"): {"*": QUALITY},
    ("lots", "dispose"): {"regulator": COMPLIANCE, "*": QUALITY},
    ("lots", "recall"): {"regulator": COMPLIANCE, "*": QUALITY},
    # a shipment's boxes are its leg's (the sender's outbound leg); storage is quality status,
    # which every role with an outbound leg may write too (lots_boxes.attach checks it)
    ("lots", "attach"): {**OUTBOUND, "*": QUALITY},
    ("lots", "certify"): {"*": COMPLIANCE},
    ("lots", "revoke"): {"*": COMPLIANCE},
    ("lots", "calibrate"): {"*": QUALITY},
    # the regulator's minimum stock of a GTIN (cloud/contracts/lots_stock.py; the rule
    # narrows the compliance cell to the regulator)
    ("lots", "stock-minimum"): {"*": COMPLIANCE},
    # serialized packs (cloud/contracts/packs.py): registering is the product's; the counter's
    # decommission, its undo and a suspect scan report are dispenses (R→P; the rules narrow
    # them to pharmacies)
    ("lots", "serialize"): {"*": PRODUCT},
    ("lots", "decommission"): {"*": R_TO_P},
    ("lots", "undo"): {"*": R_TO_P},
    ("lots", "suspect"): {"*": R_TO_P},
    # a partner's signed EPCIS statement of its shipments (cloud/contracts/epcis_statement.py):
    # the signer's outbound leg, a pharmacy's inbound one
    ("lots", "statement"): {**OUTBOUND, "pharmacy": R_TO_P},
    # a manufacturer's GS1 company prefixes (cloud/contracts/gs1_prefixes.py): its identity
    ("lots", "gs1-prefix"): {"*": MANUFACTURER_IDENTITY},
}

Refusal = Callable[[str, str], Exception]
# The sign between a stakeholder and a column in a cell's name, as DESIGN.md and
# docs/contracts.md write cells: "write: distributor × product = no".
BY: Final = "×"


def title(role: str) -> str:
    """Return how a refusal names a stakeholder: "operator team" for operator_team."""
    return role.replace("_", " ")


def cell(role: str, column: str, matrix: str = "write") -> str:
    """Return the name of one cell: "write: distributor × product = no"."""
    table = WRITE if matrix == "write" else READ
    value = table[role][column].replace("_", " ")
    return f"{matrix}: {title(role)} {BY} {TITLES[column]} = {value}"


def column_of(role: str, contract: str, tx_type: str) -> str | None:
    """Return the column a `role` writes with a `contract` `tx_type` transaction, or None
    when the role has none for it (a pharmacy ships on no leg; an unmapped type)."""
    per_role = TX_COLUMNS.get((contract, tx_type))
    if per_role is None:
        return None
    return per_role.get(role, per_role.get("*"))


def check(role: str, column: str, error: Refusal) -> None:
    """Require `role`'s write cell for `column` to be yes or own only. Raises
    error("access", the cell's name) otherwise."""
    if WRITE[role][column] not in WRITABLE:
        _deny(error, cell(role, column))


def authorize(role: str, contract: str, tx_type: str, error: Refusal) -> str:
    """Return the column `role` writes with this transaction type if its cell allows it.
    Raises error("access", detail) naming the cell, or saying the role has no column."""
    column = column_of(role, contract, tx_type)
    if column is None:
        _deny(error, f"write: {title(role)} {BY} {contract} {tx_type}: no column for this role")
    check(role, column, error)
    return column


def _deny(error: Refusal, detail: str) -> NoReturn:
    raise error("access", detail)

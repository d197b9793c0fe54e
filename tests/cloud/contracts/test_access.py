"""The write side of the access policy (cloud/contracts/access.py): the matrices as data
equal the shared vector file cell by cell, every transaction type maps to its column
(docs/contracts.md §5), and a refusal names the cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud.contracts import access
from cloud.contracts.engine import Forbidden

VECTOR = Path(__file__).parents[3].parent / "shared" / "vectors" / "access-matrix.json"


@pytest.mark.parametrize("matrix", ["read", "write"])
def test_matrices_equal_the_shared_vectors(matrix: str) -> None:
    if not VECTOR.exists():
        pytest.skip(f"{VECTOR} is absent (the shared vectors live beside the worktree)")
    vector = json.loads(VECTOR.read_text())
    assert tuple(vector["columns"]) == access.COLUMNS
    table = access.READ if matrix == "read" else access.WRITE
    assert tuple(vector[matrix]) == access.STAKEHOLDERS
    for role in access.STAKEHOLDERS:
        for column in access.COLUMNS:
            assert table[role][column] == vector[matrix][role][column], (matrix, role, column)
            assert table[role][column] in vector["values"]


def test_cell_names() -> None:
    assert access.cell("distributor", access.PRODUCT) == "write: distributor × product = no"
    assert access.cell("operator_team", access.ENTITIES_IDENTITY) == (
        "write: operator team × entities' identity = own only"
    )
    assert access.cell("regulator", access.M_TO_D, "read") == "read: regulator × M→D = no"


COLUMNS = {
    # (contract, type): {role: column or None}
    ("participants", "admit"): dict.fromkeys(access.ROLES, access.COMPLIANCE),
    ("participants", "rotate"): {
        "manufacturer": access.MANUFACTURER_IDENTITY,
        "distributor": access.ENTITIES_IDENTITY,
        "retailer": access.ENTITIES_IDENTITY,
        "pharmacy": access.ENTITIES_IDENTITY,
        "operator_team": access.ENTITIES_IDENTITY,
        "regulator": access.COMPLIANCE,
    },
    ("lots", "commission"): dict.fromkeys(access.ROLES, access.PRODUCT),
    ("lots", "ship"): {
        "manufacturer": access.M_TO_D,
        "distributor": access.D_TO_R,
        "retailer": access.R_TO_P,
        "pharmacy": None,
        "operator_team": None,
        "regulator": None,
    },
    ("lots", "receive"): {
        "manufacturer": None,
        "distributor": access.M_TO_D,
        "retailer": access.D_TO_R,
        "pharmacy": access.R_TO_P,
        "operator_team": None,
        "regulator": None,
    },
    ("lots", "split"): {
        "manufacturer": access.PRODUCT,
        "distributor": access.M_TO_D,
        "retailer": access.D_TO_R,
        "pharmacy": access.R_TO_P,
        "operator_team": access.PRODUCT,
        "regulator": access.PRODUCT,
    },
    ("lots", "dispense"): dict.fromkeys(access.ROLES, access.R_TO_P),
    ("lots", "hold"): dict.fromkeys(access.ROLES, access.QUALITY),
    ("lots", "recall"): {
        **dict.fromkeys(access.ROLES, access.QUALITY),
        "regulator": access.COMPLIANCE,
    },
    ("lots", "dispose"): {
        **dict.fromkeys(access.ROLES, access.QUALITY),
        "regulator": access.COMPLIANCE,
    },
}


@pytest.mark.parametrize("kind", list(COLUMNS), ids="/".join)
def test_each_type_writes_its_column(kind: tuple[str, str]) -> None:
    for role, column in COLUMNS[kind].items():
        assert access.column_of(role, *kind) == column, role


# Who may sign each type by the matrix alone (rules narrow some further: tested per rule).
ALLOWED = {
    ("participants", "admit"): {"manufacturer", "regulator"},
    ("participants", "rotate"): set(access.ROLES),
    ("lots", "commission"): {"manufacturer"},
    ("lots", "ship"): {"manufacturer", "distributor", "retailer"},
    ("lots", "receive"): {"distributor", "retailer", "pharmacy"},
    ("lots", "split"): {"manufacturer", "distributor", "retailer", "pharmacy"},
    ("lots", "dispense"): {"retailer", "pharmacy"},
    ("lots", "hold"): {"manufacturer", "distributor", "retailer"},
    ("lots", "recall"): {"manufacturer", "distributor", "retailer", "regulator"},
}


@pytest.mark.parametrize("kind", list(ALLOWED), ids="/".join)
def test_authorize_follows_the_write_matrix(kind: tuple[str, str]) -> None:
    for role in access.ROLES:
        if role in ALLOWED[kind]:
            assert access.authorize(role, *kind, Forbidden) == access.column_of(role, *kind)
            continue
        with pytest.raises(Forbidden) as info:
            access.authorize(role, *kind, Forbidden)
        assert info.value.reason == "access" and info.value.status == 403
        column = access.column_of(role, *kind)
        want = access.cell(role, column) if column else "no column for this role"
        assert want in info.value.detail


def test_an_unmapped_type_has_no_column() -> None:
    assert access.column_of("manufacturer", "lots", "teleport") is None
    with pytest.raises(Forbidden, match="no column"):
        access.authorize("manufacturer", "lots", "teleport", Forbidden)

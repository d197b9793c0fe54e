"""Fixtures for the cloud tests: `store` is a fresh, empty ledger store on each engine the
machine has, so every test that takes it runs against SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.store import Store
from cloud.store_sqlite import SqliteStore

ENGINES = ["sqlite"]


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty ledger store on each engine."""
    s = SqliteStore(tmp_path / "ledger.sqlite")
    try:
        yield s
    finally:
        await s.close()

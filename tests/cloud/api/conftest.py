"""Fixtures for the API tests: `regulated` is a cloud app served on a local port whose
regulator is the contract tests' REGULATOR (tests/cloud/contracts/world.py), on each engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.contracts.world import REGULATOR


@pytest.fixture
async def regulated(tmp_path: Path, database: str | None) -> AsyncIterator[Cloud]:
    server, session = await start(
        settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    )
    try:
        yield Cloud(server, session)
    finally:
        await session.close()
        await server.close()

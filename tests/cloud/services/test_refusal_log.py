"""The ledger logs refusals as rate-limited summaries (gateway/ratelog.py): a flood of bad
uploads makes a few log lines whose counts add up, while /metrics counts every one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cloud.api.state import REFUSALS
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.services.test_ingest import REASONS, refusals


async def test_a_flood_of_bad_batches_logs_a_few_lines_that_add_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, session = await start(settings(tmp_path / "cloud"))
    cloud = Cloud(server, session)
    bad = refusals()
    try:
        with caplog.at_level(logging.WARNING, logger="pharmasync.cloud.ledger"):
            for i in range(300):  # length, unregistered gateway: no registration needed
                data, want = bad[REASONS[i % 2]]
                status, _ = await cloud.upload(data)
                assert status == want
            server.app[REFUSALS].flush()
        refused = dict(server.app[REFUSALS].counts)
    finally:
        await session.close()
        await server.close()
    lines = [r for r in caplog.records if r.getMessage().startswith("refused: ")]
    assert refused == {reason: 150 for reason in REASONS[:2]}  # the counters are exact
    assert len(lines) == 2 * 2  # each reason: its first at once, then one summary
    for reason in REASONS[:2]:
        mine = [r for r in lines if r.getMessage().startswith(f"refused: {reason}: ")]
        counted = [r.refusals for r in mine]  # type: ignore[attr-defined]
        assert sum(counted) == 150, reason

"""Refusals are logged as rate-limited summaries per (source, reason): a flood yields a
bounded number of lines, and the counts in those lines add up to every refusal."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from gateway import settings as gw_settings
from gateway.ratelog import OTHER_SOURCES, RateLimitedLog
from gateway.registry import Registry
from gateway.service import Gateway
from gateway.spool import Spool

log = logging.getLogger("test.ratelog")
SECRET = bytes(31) + b"\x30"


class Clock:
    """A clock the test advances (the summariser's only notion of time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def totals(records: list[logging.LogRecord]) -> dict[tuple[str, str], int]:
    """Sum the refusals each line stands for, by (source, reason) as printed."""
    out: dict[tuple[str, str], int] = {}
    for r in records:
        where, reason, _ = r.getMessage().split(": ", 2)
        key = (where.removeprefix("rejected from "), reason)
        out[key] = out.get(key, 0) + r.refusals  # type: ignore[attr-defined]
    return out


def test_fifty_thousand_rejects_give_few_lines_whose_counts_add_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    summary = RateLimitedLog(log, interval_s=10.0, clock=clock)
    sources = [f"mqtt:pharmasync/v1/s/{i:016x}/reading" for i in range(3)]
    reasons = ["length", "bad signature"]
    rng = random.Random(7)
    sent: dict[tuple[str, str], int] = {}
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(50_000):  # 100 s of flood: 500 refusals per second
            key = (rng.choice(sources), rng.choice(reasons))
            sent[key] = sent.get(key, 0) + 1
            summary(*key, "got 4096 bytes, want 110")
            clock.now += 0.002
        summary.flush()
    lines = caplog.records
    # 6 keys: each one line at once, then at most one per 10 s window (11 windows).
    assert len(lines) <= 6 * (1 + 11), len(lines)
    assert totals(lines) == sent
    first = lines[0].getMessage()
    assert first.startswith("rejected from mqtt:pharmasync/v1/s/") and first.endswith(
        ": got 4096 bytes, want 110"
    )
    assert any(" more in 10 s (last: got 4096 bytes, want 110)" in r.getMessage() for r in lines)


def test_invented_sources_are_bounded_under_other_sources(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    summary = RateLimitedLog(log, interval_s=60.0, max_keys=8, clock=clock)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for i in range(10_000):  # every message on a topic of its own
            summary(f"mqtt:pharmasync/v1/s/{i:x}/reading", "length", "short")
        summary.flush()
    assert len(caplog.records) == 8 + 2  # 8 sources, then "other sources": first + summary
    counted = totals(caplog.records)
    assert counted[(OTHER_SOURCES, "length")] == 10_000 - 8
    assert sum(counted.values()) == 10_000


def test_a_quiet_key_is_logged_at_once_again_and_an_empty_source_reads_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    summary = RateLimitedLog(log, "refused", interval_s=5.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger=log.name):
        summary("", "bad signature", "batch 3")
        summary("", "bad signature", "batch 4")  # counted, not written
        assert len(caplog.records) == 1
        clock.now += 6
        summary.flush()  # the window's summary
        clock.now += 6
        summary.flush()  # a quiet window: the key is forgotten
        summary("", "bad signature", "batch 9")
    assert [r.getMessage() for r in caplog.records] == [
        "refused: bad signature: batch 3",
        "refused: bad signature: 1 more in 6 s (last: batch 4)",
        "refused: bad signature: batch 9",
    ]


async def test_the_tail_of_a_burst_is_written_by_a_timer(caplog: pytest.LogCaptureFixture) -> None:
    summary = RateLimitedLog(log, interval_s=0.2)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for _ in range(100):
            summary("ble:AA", "length", "short")
        assert len(caplog.records) == 1
        await asyncio.sleep(0.4)  # nothing else arrives: the loop's timer ends the window
    assert [r.refusals for r in caplog.records] == [1, 99]  # type: ignore[attr-defined]


async def test_the_gateway_logs_a_flood_in_few_lines_and_counts_every_reject(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """50,000 garbage messages through Gateway.receive (a real spool and quarantine):
    exact counters, a handful of log lines whose counts add up to 50,000."""
    s = gw_settings.from_dict(
        {"gateway": {"site": "t", "data_dir": str(tmp_path)}, "spool": {"commit_interval_s": 0}}
    )
    gw = Gateway(s, Registry(tmp_path / "registry.json"), Spool(tmp_path / "spool.sqlite"), SECRET)
    with caplog.at_level(logging.WARNING, logger="pharmasync.gateway"):
        for i in range(50_000):
            await gw.receive(b"\x01" * (i % 100), f"mqtt:pharmasync/v1/t/{i % 3}/reading")
            if i % 1000 == 999:
                await gw.flush()
        await gw.stop()  # flushes the summaries
    rejects = [r for r in caplog.records if hasattr(r, "refusals")]
    assert gw.counts == {"length": 50_000}
    assert len(rejects) <= 3 * 2, [r.getMessage() for r in rejects]
    assert sum(r.refusals for r in rejects) == 50_000  # type: ignore[attr-defined]
    assert gw.spool.quarantine_usage()[0] + gw.spool.quarantine_usage()[2] == 50_000

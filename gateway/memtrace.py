"""Where the gateway's memory goes, for a developer chasing growth: set the environment
variable PHARMASYNC_GATEWAY_TRACEMALLOC to a file and `pharmasync gateway run` starts
tracemalloc and appends to that file, every PHARMASYNC_GATEWAY_TRACEMALLOC_S seconds
(default 20), its resident memory, the lengths of its per-reading structures and the
allocation sites holding the most memory (tracemalloc slows Python: a debugging aid,
not for production; bench/RESULTS.md "Drain after an outage" says what it found).
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

ENV = "PHARMASYNC_GATEWAY_TRACEMALLOC"
ENV_EVERY = "PHARMASYNC_GATEWAY_TRACEMALLOC_S"
TOP = 25


def rss_kb() -> int:
    """This process's resident memory in KiB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sizes(rt: Any) -> dict[str, int]:
    """The lengths of the gateway's structures that grow with readings in flight."""
    gw = rt.gateway
    out = {
        "queue": len(gw._queue),
        "dup_waiters": len(gw._dup_waiters),
        "pending": len(gw.verifier.pending),
        "acks": len(gw._acks),
        "ranges": sum(len(r) for r in gw.ranges.values()),
        "lane_taken": len(gw._lane_taken),
        "verify_groups": len(gw.verify_pool._in_flight),
    }
    if rt.mqtt is not None:
        out["mqtt_in_flight"] = rt.mqtt.in_flight
        out["acks_due"] = len(rt.mqtt._acks_due)
    return out


async def run(path: Path, rt: Any, every_s: float) -> None:
    """Write a report to `path` every `every_s` seconds until cancelled."""
    tracemalloc.start(4)
    t0 = time.time()
    while True:
        await asyncio.sleep(every_s)
        snap = tracemalloc.take_snapshot()
        stats = snap.statistics("traceback")
        lines = [
            f"== {time.time() - t0:.0f} s rss {rss_kb() // 1024} MB traced "
            f"{tracemalloc.get_traced_memory()[0] >> 20} MB sizes {sizes(rt)}"
        ]
        for s in stats[:TOP]:
            frames = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in s.traceback)
            lines.append(f"{s.size >> 10:8d} KiB {s.count:9d}  {frames}")
        with path.open("a") as f:
            f.write("\n".join(lines) + "\n")


def start(rt: Any) -> asyncio.Task[None] | None:
    """The reporting task if PHARMASYNC_GATEWAY_TRACEMALLOC names a file, else None."""
    target = os.environ.get(ENV)
    if not target:
        return None
    every = float(os.environ.get(ENV_EVERY, "20"))
    return asyncio.create_task(run(Path(target), rt, every), name="memtrace")

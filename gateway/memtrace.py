"""Where the gateway's memory goes, for a developer chasing growth: set the environment
variable PHARMASYNC_GATEWAY_TRACEMALLOC to a file and `pharmasync gateway run` starts
tracemalloc and appends to that file, every PHARMASYNC_GATEWAY_TRACEMALLOC_S seconds
(default 20), its resident memory, the lengths of its per-reading structures and the
allocation sites holding the most memory (tracemalloc slows Python: a debugging aid,
not for production; bench/RESULTS.md "Drain after an outage" says what it found).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

ENV = "PHARMASYNC_GATEWAY_TRACEMALLOC"
ENV_EVERY = "PHARMASYNC_GATEWAY_TRACEMALLOC_S"
# Frames kept per allocation; 0 reports everything but tracemalloc's own figures (tracemalloc
# itself holds ~50 B per traced block in the malloc heap, which blurs that heap's figures).
ENV_FRAMES = "PHARMASYNC_GATEWAY_TRACEMALLOC_FRAMES"
# "1": after each report call glibc's malloc_trim(0) and report the RSS it gave back (if
# much, the growth is free memory the allocator keeps: fragmentation, not live objects).
ENV_TRIM = "PHARMASYNC_GATEWAY_TRACEMALLOC_TRIM"
# N > 0: also list the N commonest types among the objects the garbage collector tracks
# (containers, futures, tasks: what holds the bytes), with their counts.
ENV_TYPES = "PHARMASYNC_GATEWAY_TRACEMALLOC_TYPES"
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _sqlite() -> Any:
    try:  # the library _sqlite3 already loaded (dlopen hands back the same one)
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError):
        return None


def smaps_kb() -> dict[str, int]:
    """Anonymous and file-backed resident memory of this process (KiB), 0s elsewhere."""
    out = {"anon": 0, "file": 0}
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return out
    for key, name in (("anon", "Anonymous"), ("file", "Rss")):
        if m := re.search(rf"^{name}:\s+(\d+)", text, re.M):
            out[key] = int(m.group(1))
    out["file"] -= out["anon"]
    return out


def pymalloc() -> str:
    """pymalloc's arenas in MB (sys._debugmallocstats, which prints to the C stderr: it is
    pointed at a file meanwhile): mapped, in live blocks, free in its pools, in empty pools."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return ""
    with tempfile.TemporaryFile("w+") as f:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    got = {}
    for key in (
        "arenas allocated current",
        "bytes in allocated blocks",
        "bytes in available blocks",
        "bytes in unused pools",
    ):
        if m := re.search(rf"# {key}\s*=\s*([\d,]+)", text):
            got[key] = int(m.group(1).replace(",", ""))
    mb = {k: v >> 20 for k, v in got.items()}
    return (
        f"(arenas {got.get('arenas allocated current', 0)} MiB: blocks live "
        f"{mb.get('bytes in allocated blocks', 0)} free {mb.get('bytes in available blocks', 0)} "
        f"unused pools {mb.get('bytes in unused pools', 0)})"
    )


def allocators(libc: Any, sqlite: Any) -> str:
    """One line: glibc's heap (all arenas), pymalloc's blocks, SQLite's own memory, in MB."""
    parts = []
    sm = smaps_kb()
    parts.append(f"anon {sm['anon'] >> 10} file {sm['file'] >> 10}")
    if libc is not None and hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
        mi = libc.mallinfo2()
        parts.append(
            f"malloc: sbrk+arenas {mi.arena >> 20} mmapped {mi.hblkhd >> 20} ({mi.hblks}) "
            f"in use {mi.uordblks >> 20} free {mi.fordblks >> 20}"
        )
    parts.append(f"pymalloc blocks {sys.getallocatedblocks()} {pymalloc()}")
    if sqlite is not None:
        parts.append(f"sqlite {sqlite.sqlite3_memory_used() >> 20}")
    return "  ".join(parts)


def commonest_types(n: int) -> str:
    """The `n` commonest types among the objects the garbage collector tracks, counted."""
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    return ", ".join(f"{name} {count}" for name, count in counts.most_common(n))


def sizes(rt: Any) -> dict[str, int]:
    """The lengths of the gateway's structures that grow with readings in flight, and the
    longest wait for the broker to confirm an ack since the last call (which resets it)."""
    gw = rt.gateway
    out = {
        "queue": len(gw._queue),
        "dup_waiters": len(gw._dup_waiters),
        "pending": len(gw.verifier.pending),
        "acks": len(gw._acks),
        "ranges": sum(len(r) for r in gw.ranges.values()),
        "lane_taken": len(gw._lane_taken),
        "verify_groups": len(gw.verify_pool._in_flight),
        # MKT windows' samples held (24 B each, a day per zone at most, 1.25 x before a cut)
        "mkt_samples": sum(len(z.mkt._t) for z in gw.alarms._zones.values()),
        "tasks": len(asyncio.all_tasks()),
    }
    if rt.mqtt is not None:
        out["mqtt_in_flight"] = rt.mqtt.in_flight
        out["read_pauses"] = rt.mqtt.read_gate.pauses
        out["acks_due"] = len(rt.mqtt._acks_due)
        out["acks_unconfirmed"] = rt.mqtt.acks_unconfirmed
        out["ack_confirm_ms_max"] = round(1000 * rt.mqtt.ack_confirm_s_max)
        rt.mqtt.ack_confirm_s_max = 0.0
    return out


async def run(path: Path, rt: Any, every_s: float) -> None:
    """Write a report to `path` every `every_s` seconds until cancelled."""
    frames = int(os.environ.get(ENV_FRAMES, "4"))
    trim = os.environ.get(ENV_TRIM) == "1"
    types = int(os.environ.get(ENV_TYPES, "0"))
    libc, sqlite = _libc(), _sqlite()
    if frames > 0:
        tracemalloc.start(frames)
    first: tracemalloc.Snapshot | None = None
    t0 = time.time()
    while True:
        await asyncio.sleep(every_s)
        lines = [f"== {time.time() - t0:.0f} s rss {rss_kb() // 1024} MB sizes {sizes(rt)}"]
        lines.append("   " + allocators(libc, sqlite))
        if types > 0:
            lines.append("   types: " + commonest_types(types))
        if frames > 0:
            snap = tracemalloc.take_snapshot()
            lines.append(f"   traced {tracemalloc.get_traced_memory()[0] >> 20} MB; top sites:")
            lines += _sites(snap.statistics("traceback"))
            if first is None:
                first = snap
            else:
                lines.append("   grown since the first report:")
                lines += _sites(snap.compare_to(first, "traceback"), diff=True)
        if trim and libc is not None:
            before = rss_kb()
            libc.malloc_trim(0)
            lines.append(f"   malloc_trim(0): rss {before >> 10} -> {rss_kb() >> 10} MB")
        with path.open("a") as f:
            f.write("\n".join(lines) + "\n")


def _sites(stats: list[Any], diff: bool = False) -> list[str]:
    out = []
    for s in stats[:TOP]:
        frames = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in s.traceback)
        size, count = (s.size_diff, s.count_diff) if diff else (s.size, s.count)
        out.append(f"{size >> 10:8d} KiB {count:9d}  {frames}")
    return out


def start(rt: Any) -> asyncio.Task[None] | None:
    """The reporting task if PHARMASYNC_GATEWAY_TRACEMALLOC names a file, else None."""
    target = os.environ.get(ENV)
    if not target:
        return None
    every = float(os.environ.get(ENV_EVERY, "20"))
    return asyncio.create_task(run(Path(target), rt, every), name="memtrace")

"""The registry as stored: gateways, boxes and boxes' attachments to lots, shipments or
zones. A change may carry its signed registry entry (gateway/registry_change.py), appended
to the log in the same transaction (authority.append_once)."""

from __future__ import annotations

import time

from cloud.storage import authority
from cloud.storage.engine import Tx
from cloud.storage.errors import NotFound
from cloud.storage.log import Commit


async def register_gateway(
    commit: Commit, key: bytes, site: str, entry: bytes | None
) -> int | None:
    """Register (or move) a gateway; return `entry`'s log index (module docstring)."""
    index = await authority.append_once(commit, entry)
    await commit.tx.execute(
        "INSERT INTO gateways (key, site, registered_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET site = excluded.site",
        key,
        site,
        time.time(),
    )
    return index


async def register_device(
    commit: Commit, key: bytes, site: str, label: str, entry: bytes | None
) -> int | None:
    """Register (or relabel) a box; return `entry`'s log index."""
    index = await authority.append_once(commit, entry)
    await commit.tx.execute(
        "INSERT INTO devices (key, site, label, registered_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET site = excluded.site, label = excluded.label",
        key,
        site,
        label,
        time.time(),
    )
    return index


async def attach(
    commit: Commit, device: bytes, subject: str, start: int, end: int | None, entry: bytes | None
) -> int | None:
    """Attach a registered box to `subject` for [start, end); return `entry`'s log index.
    Raises NotFound for an unregistered box."""
    box = await commit.tx.fetchval("SELECT id FROM devices WHERE key = ?", device)
    if box is None:
        raise NotFound(f"box {device.hex()} is not registered")
    index = await authority.append_once(commit, entry)
    await commit.tx.execute(
        'INSERT INTO attachments (device, subject, start, "end") VALUES (?, ?, ?, ?)',
        box,
        subject,
        start,
        end,
    )
    return index


async def attachments(tx: Tx, device: bytes) -> list[dict[str, object]]:
    """The box's attachments, oldest first (equal starts in the order they were made)."""
    rows = await tx.fetchall(
        'SELECT a.subject, a.start, a."end" FROM attachments a JOIN devices d '
        f"ON d.id = a.device WHERE d.key = ? ORDER BY a.start, a.{tx.row_order}",
        device,
    )
    return [{"subject": s, "start": a, "end": b} for s, a, b in rows]


async def gateways(tx: Tx) -> list[dict[str, object]]:
    """Registered gateways: {"key" (hex), "site", "last_seq" (-1: none yet)}."""
    rows = await tx.fetchall(
        "SELECT g.key, g.site, "
        "coalesce((SELECT max(b.seq) FROM batches b WHERE b.gateway = g.key), -1) "
        "FROM gateways g ORDER BY g.registered_at, g.key"
    )
    return [{"key": bytes(k).hex(), "site": site, "last_seq": last} for k, site, last in rows]


async def devices(tx: Tx) -> list[dict[str, object]]:
    """Registered boxes: {"key" (hex), "site", "label", "last_seq" (-1: none yet)}."""
    rows = await tx.fetchall(
        "SELECT d.key, d.site, d.label, "
        "coalesce((SELECT max(r.seq) FROM leaves r "
        "WHERE r.device = d.id AND r.wire IS NOT NULL), -1) FROM devices d ORDER BY d.id"
    )
    return [
        {"key": bytes(k).hex(), "site": site, "label": label, "last_seq": last}
        for k, site, label, last in rows
    ]


async def site_boxes(tx: Tx, site: str) -> list[bytes]:
    """The keys of the boxes registered at `site`, in key order."""
    rows = await tx.fetchall("SELECT key FROM devices WHERE site = ? ORDER BY key", site)
    return [bytes(k) for (k,) in rows]


async def gateway_site(tx: Tx, key: bytes) -> str | None:
    """The site a registered gateway is at (None: not registered)."""
    site = await tx.fetchval("SELECT site FROM gateways WHERE key = ?", key)
    return None if site is None else str(site)

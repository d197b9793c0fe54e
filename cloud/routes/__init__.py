"""The cloud's HTTP API, one module per route group; each exposes `routes`.

batches.py   POST /v1/batches                         gateway uploads
log.py       /v1/checkpoint, /v1/log/...              the verifiable log
readings.py  /v1/readings/..., /v1/devices/.../readings   proof bundles, history
registry.py  /v1/registry, /v1/devices, /v1/gateways  who may send what
events.py    /v1/events, /v1/gateways/{key}/events    signed gateway events
meta.py      /v1/openapi.json, /metrics, /healthz     operations
"""

from __future__ import annotations

import re

from aiohttp import web

from cloud.ledger import LedgerError

MAX_INT = 2**63 - 1  # what the databases store: sizes, indices and times fit
_DECIMAL = re.compile("[0-9]{1,19}")


def int_query(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT,
) -> int:
    """Return query parameter `name` as an int in [minimum, maximum]. Raises LedgerError
    400 if it is absent (without a default) or not such an int."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise LedgerError("query", f"missing parameter {name!r}")
        return default
    return parse_int(raw, name, minimum, maximum, reason="query")


def parse_int(
    raw: str, name: str, minimum: int = 0, maximum: int = MAX_INT, *, reason: str | None = None
) -> int:
    """Return `raw` (ASCII decimal digits) as an int in [minimum, maximum]. Raises
    LedgerError 400 with `reason` (default: `name`) otherwise."""
    if not _DECIMAL.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise LedgerError(
            reason or name, f"{name}: got {raw[:40]!r}, want an integer {minimum} to {maximum}"
        )
    return int(raw)

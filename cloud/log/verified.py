"""A verified batch: what the service's checks (cloud/services/ingest.py) hand to storage."""

from __future__ import annotations

from dataclasses import dataclass

from device import reading
from gateway import batch


@dataclass(frozen=True)
class Verified:
    """A batch that passed every check: its header and decoded readings, in leaf order."""

    header: batch.BatchHeader
    header_bytes: bytes
    readings: list[reading.Reading]
    wires: list[bytes]

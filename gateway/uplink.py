"""The uplink: send sealed batches to the cloud ledger, oldest first, and keep its receipts.

    POST <url>/v1/batches            Content-Type: application/octet-stream
    body: the 181-byte signed batch header, then its readings (110 bytes each, leaf order)

The cloud answers 201 (stored) or 200 (already stored: the original receipt) with a JSON
receipt {"gateway", "seq", "header_hash", "log_index", "checkpoint"}, or an
application/problem+json error whose `reason` names what it refused (docs/protocol.md).
Sending is idempotent on (gateway key, batch seq), so after a crash or a timeout the
gateway simply sends the oldest unacknowledged batch again. Failures back off
exponentially with jitter; a success sends the next batch at once while any wait.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from typing import Any

import aiohttp

from gateway.service import Gateway

log = logging.getLogger("pharmasync.gateway.uplink")
PATH = "/v1/batches"
RECEIPT_FIELDS = ("gateway", "seq", "header_hash", "log_index", "checkpoint")


class UplinkState(enum.Enum):
    IDLE = "idle"  # nothing to send
    SENDING = "sending"  # a POST is under way
    BACKING_OFF = "backing off"  # the last POST failed; waiting before the next


class UplinkError(Exception):
    """The cloud did not accept a batch; str() says what it answered."""


class Uplink:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings.uplink
        self.state = UplinkState.IDLE
        self.sent = 0
        self.last_error = ""
        self.last_success: float | None = None

    async def send(self, session: aiohttp.ClientSession, seq: int) -> dict[str, Any]:
        """POST batch `seq` and return the cloud's receipt. Raises UplinkError or
        aiohttp.ClientError."""
        sealed = await self.gateway.spool_call(self.gateway.spool.batch, seq)
        if sealed is None:
            raise UplinkError(f"batch {seq} is not in the spool")
        body = sealed.header.encode() + b"".join(sealed.readings)
        async with session.post(
            self.settings.url.rstrip("/") + PATH,
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        ) as resp:
            if resp.status in (200, 201):
                receipt = await resp.json()
                missing = [f for f in RECEIPT_FIELDS if f not in receipt]
                if missing or receipt["seq"] != seq:
                    raise UplinkError(f"batch {seq}: malformed receipt {receipt!r}")
                return receipt
            text = (await resp.text())[:500]
            raise UplinkError(f"batch {seq}: HTTP {resp.status}: {text}")

    async def run(self) -> None:
        """Send every sealed batch, oldest first, for as long as it runs."""
        backoff = 1.0
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                seq = await self.gateway.spool_call(self.gateway.spool.oldest_unsent)
                if seq is None:
                    self.state = UplinkState.IDLE
                    await asyncio.sleep(0.2)
                    continue
                self.state = UplinkState.SENDING
                try:
                    receipt = await self.send(session, seq)
                except (aiohttp.ClientError, UplinkError, TimeoutError, ValueError) as e:
                    self.last_error = str(e) or type(e).__name__
                    self.state = UplinkState.BACKING_OFF
                    delay = backoff * random.uniform(0.5, 1.5)
                    log.warning("uplink: %s; retrying in %.1f s", self.last_error, delay)
                    await asyncio.sleep(delay)
                    backoff = min(self.settings.max_backoff_s, backoff * 2)
                    continue
                await self.gateway.spool_call(self.gateway.spool.mark_sent, seq, receipt)
                self.sent += 1
                self.last_success = time.time()
                backoff = 1.0
                log.info("uplink: batch %d in the ledger at index %s", seq, receipt["log_index"])

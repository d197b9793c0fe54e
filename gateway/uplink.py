"""The uplink: send sealed batches to the cloud ledger, oldest first, and keep its receipts.

    POST <url>/v1/batches            Content-Type: application/octet-stream
    body: the 181-byte signed batch header, then its readings (110 bytes each, leaf order)

The cloud answers 201 (stored) or 200 (already stored: the original receipt) with a JSON
receipt {"gateway", "seq", "header_hash", "log_index", "checkpoint"}, or an
application/problem+json error whose `reason` names what it refused (docs/protocol.md).
Sending is idempotent on (gateway key, batch seq), so after a crash or a timeout the
gateway simply sends the oldest unacknowledged batch again. Up to [uplink] in_flight batches
are sent at once, oldest first (the cloud stores a batch that arrives before its
predecessor once that one is stored); their receipts are checked and recorded in order,
and the first failure drops those after it, to be sent again. Failures back off
exponentially with jitter; a success sends the next batch at once while any wait.

Gateway events (gateway/event.py) go the same way, beside the batches and independent of
them (a batch the cloud refuses does not hold up an alarm, nor the reverse):

    POST <url>/v1/events             Content-Type: application/json
    body: {"events": [{"event": {...}, "signature": "<hex>"}, ...]}   oldest first, <= 100

The cloud answers 201 (some stored now) or 200 (all stored before) with
{"gateway", "events": [{"seq", "log_index"}, ...]}, one per event in order. Idempotent on
(gateway key, event seq): the spool marks events sent only when this answer arrives, and a
resend of stored events gets the same log indexes.

Cosigned receipts ([uplink] cosignatures = N > 0; docs/protocol.md, "Cosigned receipt"): a
third loop asks, for each accepted batch oldest first,

    GET <url>/v1/batches/<gateway key>/<seq>/receipt?cosignatures=N

200 is the receipt the gateway holds plus a later checkpoint with N cosignatures and the
proofs that tie them: checked (gateway/cosigned_receipt.py, with [uplink] log_vkey and
witnesses when set) and kept in the spool. 409 "not cosigned" means not yet: it asks again
after [uplink] cosigned_poll_s. Anything else, or a receipt that does not check, backs off.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway import cosigned_receipt, event
from gateway.checkpoint import CosignatureVerifier
from gateway.note import Verifier
from gateway.service import Gateway

log = logging.getLogger("pharmasync.gateway.uplink")
PATH = "/v1/batches"
EVENTS_PATH = "/v1/events"
PRUNE_EVENTS_S = 3600.0  # drop events the cloud received keep_uploaded_s ago, this often
RECEIPT_FIELDS = ("gateway", "seq", "header_hash", "log_index", "checkpoint")
MAX_COSIGNED_BYTES = 1 << 20  # a cosigned receipt is a few KiB


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
        self.events_sent = 0
        self._events_pruned = 0.0  # monotonic time of the last prune of sent events
        self.cosigned = 0  # cosigned receipts fetched, checked and kept by this run
        self.cosigned_refused = 0  # cosigned receipts that did not check
        s = self.settings
        self._log_key = Verifier.parse(s.log_vkey) if s.log_vkey else None
        self._witnesses = [CosignatureVerifier.parse(w) for w in s.witnesses]

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
                if (
                    missing
                    or receipt["seq"] != seq
                    or receipt["header_hash"] != sealed.header.hash().hex()
                ):
                    raise UplinkError(f"batch {seq}: malformed receipt {receipt!r:.300}")
                return receipt
            text = (await resp.text())[:500]
            raise UplinkError(f"batch {seq}: HTTP {resp.status}: {text}")

    async def send_events(
        self, session: aiohttp.ClientSession, records: list[bytes]
    ) -> list[tuple[int, int]]:
        """POST a page of event records (oldest first) and return the cloud's receipts
        [(event seq, log index)], one per event. Raises UplinkError or aiohttp.ClientError."""
        events = [event.decode(r) for r in records]
        async with session.post(
            self.settings.url.rstrip("/") + EVENTS_PATH,
            json=event.page(events),
        ) as resp:
            if resp.status not in (200, 201):
                text = (await resp.text())[:500]
                raise UplinkError(f"events {events[0].seq}..: HTTP {resp.status}: {text}")
            answer = await resp.json()
        try:
            got = [(int(r["seq"]), int(r["log_index"])) for r in answer["events"]]
        except (KeyError, TypeError, ValueError):
            got = []
        if [seq for seq, _ in got] != [e.seq for e in events]:
            raise UplinkError(f"events {events[0].seq}..: malformed receipt {answer!r:.300}")
        return got

    async def fetch_cosigned(
        self, session: aiohttp.ClientSession, seq: int, header: bytes, receipt: dict[str, Any]
    ) -> tuple[dict[str, Any], cosigned_receipt.Checked] | None:
        """GET batch `seq`'s cosigned receipt and check it: the receipt it carries must be
        `receipt` (the one kept), its entry `header`. Return (the receipt's JSON, what it
        proved), or None while the cloud has none with enough cosignatures (409). Raises
        UplinkError (another answer, or one that does not check), aiohttp.ClientError."""
        wanted = self.settings.cosignatures
        url = f"{self.settings.url.rstrip('/')}/v1/batches/{self.gateway.key.hex()}/{seq}/receipt"
        async with session.get(url, params={"cosignatures": str(wanted)}) as resp:
            if resp.status == 409:
                return None
            body = bytearray()  # read up to one byte past the limit, never the whole of more
            async for chunk in resp.content.iter_any():
                body += chunk
                if len(body) > MAX_COSIGNED_BYTES:
                    break
            if resp.status != 200:
                text = bytes(body[:500]).decode(errors="replace")
                raise UplinkError(f"cosigned receipt of batch {seq}: HTTP {resp.status}: {text}")
        try:
            if len(body) > MAX_COSIGNED_BYTES:
                raise cosigned_receipt.ReceiptError("shape", f"over {MAX_COSIGNED_BYTES} bytes")
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as e:  # RecursionError: absurd nesting
                raise cosigned_receipt.ReceiptError("shape", f"not JSON: {e}") from None
            parsed = cosigned_receipt.parse(doc)
            if parsed.receipt != receipt or parsed.entry[1:] != header:
                raise cosigned_receipt.ReceiptError(
                    "entry", "not the receipt and header this gateway holds for the batch"
                )
            checked = cosigned_receipt.check(
                parsed,
                log_key=self._log_key,
                witnesses=self._witnesses,
                min_cosignatures=wanted,
            )
        except cosigned_receipt.ReceiptError as e:
            self.cosigned_refused += 1
            raise UplinkError(f"cosigned receipt of batch {seq} refused: {e}") from None
        return parsed.to_json(), checked

    async def _fetch_cosigned(self, session: aiohttp.ClientSession) -> bool:
        """Fetch, check and keep the cosigned receipt of the oldest accepted batch without
        one; return whether one was kept (False: none due, or not cosigned yet)."""
        spool = self.gateway.spool
        due = await self.gateway.spool_call(spool.next_uncosigned)
        if due is None:
            return False
        seq, header, receipt = due
        found = await self.fetch_cosigned(session, seq, header, receipt)
        if found is None:
            return False
        doc, checked = found
        await self.gateway.spool_call(
            spool.keep_cosigned, seq, doc, checked.size, checked.cosignatures
        )
        self.cosigned += 1
        log.info(
            "uplink: batch %d has a cosigned receipt (size %d, %d cosignatures)",
            seq,
            checked.size,
            checked.cosignatures,
        )
        return True

    async def _unsent(self) -> tuple[int, int]:
        """(the oldest unsent batch's seq, one past the newest's): receipts are recorded in
        order, so the unsent batches are every one from the oldest unsent on."""
        spool = self.gateway.spool
        first = await self.gateway.spool_call(spool.oldest_unsent)
        if first is None:
            return 0, 0
        count, _ = await self.gateway.spool_call(spool.unsent)
        return first, first + count

    async def _send_batch(self, session: aiohttp.ClientSession) -> bool:
        """Send the unsent batches oldest first, up to [uplink] in_flight at once (the cloud
        takes a batch that arrives before its predecessor once that one is stored), and
        record their receipts in order; return whether there was one. The first that fails
        raises, and those sent after it are dropped: the next round sends them again, and
        a batch the cloud stored already gets its original receipt (200)."""
        first, end = await self._unsent()
        if first == end:
            self.state = UplinkState.IDLE
            return False
        self.state = UplinkState.SENDING
        window = self.settings.in_flight
        flying: deque[tuple[int, asyncio.Task[dict[str, Any]]]] = deque()
        next_seq = first
        try:
            while True:
                if next_seq >= end and len(flying) < window:
                    _, end = await self._unsent()  # batches sealed meanwhile
                while next_seq < end and len(flying) < window:
                    task = asyncio.create_task(self.send(session, next_seq))
                    flying.append((next_seq, task))
                    next_seq += 1
                if not flying:
                    return True
                seq, task = flying[0]
                receipt = await task
                flying.popleft()
                await self.gateway.spool_call(self.gateway.spool.mark_sent, seq, receipt)
                self.sent += 1
                self.last_success = time.time()
                log.info("uplink: batch %d in the ledger at index %s", seq, receipt["log_index"])
        finally:
            for _, task in flying:
                task.cancel()
            await asyncio.gather(*(task for _, task in flying), return_exceptions=True)

    async def _send_events(self, session: aiohttp.ClientSession) -> bool:
        """Send the oldest page of unsent events, if any; return whether there was one."""
        spool = self.gateway.spool
        page = self.gateway.settings.events.page_size
        records = await self.gateway.spool_call(spool.unsent_events, page)
        if not records:
            return False
        receipts = await self.send_events(session, records)
        await self.gateway.spool_call(spool.mark_events_sent, receipts)
        self.events_sent += len(receipts)
        log.info("uplink: events %d..%d in the ledger", receipts[0][0], receipts[-1][0])
        if time.monotonic() - self._events_pruned > PRUNE_EVENTS_S:
            self._events_pruned = time.monotonic()
            keep = self.gateway.settings.spool.keep_uploaded_s
            await self.gateway.spool_call(spool.prune_events, keep)
        return True

    async def _forever(
        self,
        session: aiohttp.ClientSession,
        step: Callable[[aiohttp.ClientSession], Awaitable[bool]],
        idle_s: float = 0.2,
    ) -> None:
        """Run `step` until cancelled: at once again after a send, after `idle_s` when idle,
        after an exponential backoff with jitter when it fails."""
        backoff = 1.0
        while True:
            try:
                sent = await step(session)
            except (aiohttp.ClientError, UplinkError, TimeoutError, ValueError) as e:
                self.last_error = str(e) or type(e).__name__
                if step == self._send_batch:
                    self.state = UplinkState.BACKING_OFF
                delay = backoff * random.uniform(0.5, 1.5)
                log.warning("uplink: %s; retrying in %.1f s", self.last_error, delay)
                await asyncio.sleep(delay)
                backoff = min(self.settings.max_backoff_s, backoff * 2)
                continue
            backoff = 1.0
            if not sent:
                await asyncio.sleep(idle_s)

    async def run(self) -> None:
        """Send every sealed batch and every gateway event, each oldest first, and fetch
        cosigned receipts if configured, for as long as it runs (a loop each, each with its
        own backoff)."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as tg:
            tg.create_task(self._forever(session, self._send_batch), name="uplink batches")
            tg.create_task(self._forever(session, self._send_events), name="uplink events")
            if self.settings.cosignatures:
                poll = self.settings.cosigned_poll_s
                tg.create_task(
                    self._forever(session, self._fetch_cosigned, poll), name="uplink receipts"
                )

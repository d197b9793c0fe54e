"""The event service: gateways' signed events (docs/protocol.md, "Gateway events";
gateway/event.py) — alarms raised, cleared and acknowledged, box status — each stored as its
own log entry (kind 0x05), and read back per gateway.

Signatures are checked off the event loop, a page is stored in one transaction, and an event
sent again is answered with its log index, not refused. Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

import logging
from typing import Any

from cloud.services.refusals import LedgerError
from cloud.services.shared import Shared
from cloud.storage.store import StoreConflict
from gateway import event

log = logging.getLogger("pharmasync.cloud.ledger.events")


class EventService:
    """Gateway events over one Store and its log (module docstring)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.stored = 0  # events this worker stored
        self.resends = 0  # stored events sent again, answered with their log index

    async def append(self, page: object) -> tuple[dict[str, Any], bool]:
        """Check a page of signed gateway events (POST /v1/events, gateway/event.py) and
        store each new one as its own log entry (kind 0x05), the page in one transaction.
        Return (answer, True if any was stored now); events stored before are answered with
        their log index. Raises LedgerError: 400 "event <field>" for a malformed or forged
        event, 403 "unregistered gateway", 409 "event conflict" / "event gap"."""
        try:
            events = event.parse_page(page)
        except event.EventError as e:
            raise self.shared.refusals.refuse(e.reason, e.detail, 400) from None
        gateway = events[0].gateway
        if not await self.shared.store.gateway_registered(gateway):
            raise self.shared.refusals.refuse(
                "unregistered gateway", f"gateway {gateway.hex()}", 403
            )
        forged = await self.shared.off_loop(_first_forged, events)
        if forged is not None:
            detail = f"event {forged} is not signed by gateway {gateway.hex()}"
            raise self.shared.refusals.refuse("event signature", detail, 400)
        try:
            stored = await self.shared.store.store_events(gateway, events)
        except StoreConflict as e:
            raise self.shared.refusals.conflict(e) from None
        created = sum(new for _, new in stored)
        self.stored += created
        self.resends += len(stored) - created
        if created:
            await self.shared.appended()
            log.info("events %s/%d..%d stored", gateway.hex()[:12], events[0].seq, events[-1].seq)
        answer = {
            "gateway": gateway.hex(),
            "events": [
                {"seq": ev.seq, "log_index": index}
                for ev, (index, _) in zip(events, stored, strict=True)
            ],
        }
        return answer, created > 0

    async def of_gateway(self, gateway: bytes, after: int, limit: int) -> dict[str, Any]:
        """Return a registered gateway's events with seq > after (up to `limit`, oldest
        first) as GET /v1/gateways/{key}/events answers. Raises LedgerError 404 for an
        unregistered gateway."""
        if not await self.shared.store.gateway_registered(gateway):
            raise LedgerError("unregistered gateway", f"gateway {gateway.hex()}", 404)
        found = []
        for seq, index, record in await self.shared.store.gateway_events(gateway, after, limit):
            found.append({"seq": seq, "log_index": index, **event.decode(record).to_wire()})
        return {"gateway": gateway.hex(), "events": found}


def _first_forged(events: list[event.Event]) -> int | None:
    """Return the seq of the first event whose signature does not verify, if any."""
    return next((ev.seq for ev in events if not ev.verify_signature()), None)

"""The alarm-ack relay: signed alarm acknowledgements (gateway/alarm_ack.py) relayed to the
gateway they concern, off the log (docs/protocol.md, "Alarm acknowledgements through the
cloud"). The gateway's own signed "alarm-acknowledged" event is what the log records.

An ack is stored only if its signer is authorised for the gateway's site by the log's
configuration entries so far (cloud/services/config.py); the gateway checks it again against
the entries it follows itself. Raises LedgerError (cloud/services/refusals.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cloud.services.config import ConfigService
from cloud.services.refusals import LedgerError
from cloud.services.shared import Shared
from gateway import alarm_ack

log = logging.getLogger("pharmasync.cloud.ledger.alarm_acks")


class AlarmAckService:
    """Relayed alarm acknowledgements over one Store (module docstring)."""

    def __init__(self, shared: Shared, config: ConfigService) -> None:
        self.shared = shared
        self.config = config

    async def relay(self, body: object) -> tuple[dict[str, Any], bool]:
        """Check a signed alarm acknowledgement and store it for its gateway to fetch;
        return (the answer, whether it is new). A replay answers as the first time did.
        Raises LedgerError: 400 "malformed", 403 "bad signature", 404 "unregistered
        gateway", 403 "unauthorised key" (not authorised for the gateway's site by the
        configuration entries in the log so far, gateway/config_entry.py)."""
        try:
            signed = alarm_ack.decode(json.dumps(body, separators=(",", ":")).encode())
        except alarm_ack.AckError as e:
            status = 403 if e.reason == "bad signature" else 400
            raise self.shared.refusals.refuse(e.reason, e.detail, status) from None
        gateway = signed.ack.gateway
        site = await self.shared.store.gateway_site(gateway)
        if site is None:
            raise self.shared.refusals.refuse(
                "unregistered gateway", f"gateway {gateway.hex()}", 404
            )
        size = await self.shared.store.log_size()
        authority = await self.config.authority(size)
        if signed.key not in authority.ack_keys_for(site):
            detail = f"key {signed.key.hex()} may not acknowledge alarms of site {site}"
            raise self.shared.refusals.refuse("unauthorised key", detail, 403)
        ack_id, checked_at, new = await self.shared.store.store_alarm_ack(
            gateway, signed.digest(), signed.wire(), size
        )
        if new:
            log.info("alarm ack %s of %s relayed", signed.ack.alarm, gateway.hex()[:12])
        answer = {"id": ack_id, "gateway": gateway.hex(), "alarm": signed.ack.alarm}
        return answer | {"log_size": checked_at}, new

    async def of_gateway(self, gateway: bytes, after: int, limit: int) -> dict[str, Any]:
        """The signed acks relayed to a registered gateway with id > after (up to `limit`,
        oldest first), as GET /v1/gateways/{key}/alarm-acks answers. Raises LedgerError
        404 for an unregistered gateway."""
        if await self.shared.store.gateway_site(gateway) is None:
            raise LedgerError("unregistered gateway", f"gateway {gateway.hex()}", 404)
        found = [
            {"id": i, "signed_ack": json.loads(wire)}
            for i, wire in await self.shared.store.alarm_acks(gateway, after, limit)
        ]
        return {"gateway": gateway.hex(), "acks": found}

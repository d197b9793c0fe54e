"""The lots a gateway's boxes are on, for the gateway alone (issue 11 §4; docs/protocol.md,
"Lots of a gateway's boxes"): GET /v1/gateways/{key}/lots.

The gateway signs the read with its registered key over a sign-in challenge
(gateway/gateway_auth.py); the challenge is consumed in the database, so it works once, on
any worker, within its 60 s. Then: the gateway's site from the registry, the boxes
registered at that site, and for each the lots it is on now or later with their storage
profiles (cloud/contracts/box_lots.py), read from the contracts' State under the contract
service's lock. Nothing about holders, quantities or shipments. Raises LedgerError
(counted by reason): 400 "gateway" (the key in the path), "challenge" or "signature"
(malformed), 401 "auth" (unsigned), "signature" (does not verify) or "challenge"
(unknown, expired or used), 403 "gateway" (not a registered gateway).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cloud.contracts import box_lots
from cloud.services.contracts import ContractService
from cloud.services.shared import Shared
from gateway import gateway_auth
from gateway.lot_profiles import to_answer
from gateway.refusal import Refused, hex_field

log = logging.getLogger("pharmasync.cloud.ledger.gateway_lots")

METHOD = "GET"


def path_of(gateway: str) -> str:
    """The route's path for gateway key `gateway` (hex), as signed."""
    return f"/v1/gateways/{gateway}/lots"


class GatewayLotService:
    """Answers a registered gateway which lots its site's boxes are on (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService) -> None:
        self.shared = shared
        self.contracts = contracts
        self.answered = 0  # signed reads answered by this worker

    async def lots(
        self,
        gateway_hex: str,
        challenge: str | None,
        signature: str | None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Check the signed read and return {"gateway", "site", "time" (ms), "boxes":
        [{"box", "lots": [LotOn.to_json(), ...]}, ...]} (gateway/lot_profiles.py
        to_answer) for the boxes at the gateway's site that are on a lot. `challenge` and
        `signature` are the headers' values (None: absent). Raises LedgerError (module
        docstring)."""
        now = time.time() if now is None else now
        refusals = self.shared.refusals
        try:
            gateway = hex_field(gateway_hex, "gateway", 32)
            found, sig = gateway_auth.read_headers(challenge, signature)
            gateway_auth.check(gateway, found, sig, METHOD, path_of(gateway_hex))
        except Refused as e:
            raise refusals.of(e) from None
        if not await self.shared.store.use_challenge(found, int(now)):
            raise refusals.refuse("challenge", "unknown, expired or used: ask for another", 401)
        site = await self.shared.store.gateway_site(gateway)
        if site is None:
            raise refusals.refuse("gateway", f"{gateway_hex} is not a registered gateway", 403)
        boxes = await self.shared.store.site_boxes(site)
        now_ms = int(now * 1000)
        on = await self.contracts.read(lambda state: box_lots.lots_of_boxes(state, boxes, now_ms))
        self.answered += 1
        log.debug("gateway %s: %d of %d boxes on lots", gateway_hex[:12], len(on), len(boxes))
        return to_answer(gateway, site, now_ms, on)

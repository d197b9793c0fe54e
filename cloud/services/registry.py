"""The registry service: owner-signed registry changes (log kind 0x02,
gateway/registry_change.py) applied to the store, and who is registered.

Each change type has its store write, dispatched by type. Whether the signer is an owner,
and whether the request is a replay, are the store's checks, made in the transaction that
appends the entry: checked here first, another worker could change the owners in between,
and two copies of one request sent at once could both pass. Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

import logging
from typing import assert_never

from cloud.services.shared import Shared
from cloud.storage.store import StoreConflict
from gateway import registry_change as registry
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger.registry")


class RegistryService:
    """Registry changes and listings over one Store (module docstring)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.applied = 0  # registry changes this worker appended

    async def apply(self, request: object, now: float | None = None) -> int:
        """Check a signed registry request and apply it, logging it; return the log index
        of its entry. Raises LedgerError: 400 malformed, 403 signature or not an owner,
        404 "unregistered box" (an attachment of a box not registered), 409 "replayed"."""
        try:
            change, entry = registry.open_request(request, None, now)
        except registry.RegistryError as e:
            raise self.shared.refusals.of(e) from None
        try:
            index = await self._write(change, entry)
        except StoreConflict as e:
            raise self.shared.refusals.conflict(e) from None
        except LookupError as e:
            raise self.shared.refusals.refuse("unregistered box", str(e), 404) from None
        except Refused as e:  # the owner is not one at this point of the log
            raise self.shared.refusals.of(e) from None
        assert index is not None, "a store returns the index of the entry it appended"
        self.applied += 1
        log.info("registry: %s %s", change.OP, change.key.hex()[:12])
        await self.shared.appended()
        return index

    async def _write(self, change: registry.Change, entry: bytes) -> int | None:
        """Apply `change` to the store with its log `entry`; return the entry's index."""
        match change:
            case registry.GatewayRegistration():
                return await self.shared.store.register_gateway(change.key, change.site, entry)
            case registry.BoxRegistration():
                return await self.shared.store.register_device(
                    change.key, change.site, change.label, entry
                )
            case registry.Attachment():
                return await self.shared.store.attach(
                    change.key, change.subject, change.start, change.end, entry
                )
            case _:
                assert_never(change)

    async def gateways(self) -> list[dict[str, object]]:
        """Registered gateways: key, site and their last stored batch."""
        return await self.shared.store.gateways()

    async def devices(self) -> list[dict[str, object]]:
        """Registered boxes: key, site, label and the highest sequence number stored."""
        return await self.shared.store.devices()

    async def attachments(self, device: bytes) -> list[dict[str, object]]:
        """What a box was attached to (lots, shipments, zones), and when."""
        return await self.shared.store.attachments(device)

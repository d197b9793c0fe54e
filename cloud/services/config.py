"""The configuration service: who holds authority, as the log says (entries of kind 0x06,
gateway/config_entry.py) — the owners, who sign registry and owner changes, the keys
they authorise to acknowledge a site's alarms, the contracts' regulators and the replay
grants they give.

`serve --owner` and `serve --regulator` keys are bootstrap only: the first start writes them
to the log, and from then on the log wins; changes are signed requests (by an owner; by a
regulator for the regulators and grants). Gateways and auditors follow the
same entries (GET /v1/registry/entries) and fold them with the same rule
(gateway/config_entry.py), trusting the cloud for nothing. Raises LedgerError
(cloud/services/refusals.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from cloud.services.shared import Shared
from cloud.storage.store import StoreConflict
from gateway import config_entry
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud.ledger.config")

MAX_AUTHORITY_PAGE = 500  # entries per GET /v1/registry/entries answer


class ConfigService:
    """The owners and acknowledgement keys of one Store's log (module docstring)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.changes = 0  # configuration entries this worker appended, the bootstrap included

    async def load_owners(self, pinned: Collection[bytes] = ()) -> frozenset[bytes]:
        """Return the log's owner set, writing the bootstrap entry naming `pinned` (the
        `serve --owner` keys) if the log has no configuration entry yet. Keys that differ
        from the log's are reported (the log wins): changes go through signed requests.
        The store's owner set is rebuilt from the log's configuration entries first."""
        owners = await self.shared.store.rebuild_owners()
        if not owners and pinned:
            try:
                await self.shared.store.append_config(
                    config_entry.bootstrap_entry(pinned, int(time.time()))
                )
                self.changes += 1
                log.info("owners: bootstrap names %d owner(s) on the log", len(set(pinned)))
            except (StoreConflict, Refused) as e:  # another worker wrote it first
                log.info("owners: bootstrap written by another worker (%s)", e)
            owners = await self.shared.store.owners()
        if pinned and owners != frozenset(pinned):
            log.warning(
                "owners: --owner %s differ from the log's owners %s; the log wins "
                "(change owners with `pharmasync cloud owners add/remove`)",
                sorted(k.hex()[:12] for k in set(pinned)),
                sorted(k.hex()[:12] for k in owners),
            )
        await self.shared.appended()
        return owners

    async def load_regulators(self, pinned: Collection[bytes] = ()) -> frozenset[bytes]:
        """Return the contracts' regulators as the log names them, writing the regulators'
        bootstrap naming `pinned` (the `serve --regulator` keys) if the log names none.
        Keys that differ from the log's are reported (the log wins): later changes are
        0x06 "regulator" entries signed by a current regulator."""
        regulators = (await self.authority(await self.shared.store.log_size())).regulators
        if not regulators and pinned:
            entry = config_entry.bootstrap_entry(pinned, int(time.time()), config_entry.REGULATOR)
            try:
                await self.shared.store.append_config(entry)
                self.changes += 1
                log.info("regulators: bootstrap names %d on the log", len(set(pinned)))
            except (StoreConflict, Refused) as e:  # another worker wrote it first
                log.info("regulators: bootstrap written by another worker (%s)", e)
            await self.shared.appended()
            regulators = (await self.authority(await self.shared.store.log_size())).regulators
        if pinned and regulators != frozenset(pinned):
            log.warning(
                "regulators: --regulator %s differ from the log's regulators %s; the log wins "
                "(a change is a 0x06 regulator entry signed by a current regulator)",
                sorted(k.hex()[:12] for k in set(pinned)),
                sorted(k.hex()[:12] for k in regulators),
            )
        return regulators

    async def owners(self) -> frozenset[bytes]:
        """The owner keys after the log's last configuration entry."""
        return await self.shared.store.owners()

    async def apply(self, request: object, now: float | None = None) -> int:
        """Check a signed owner or ack-key change and append it, updating the owner set;
        return its log index. Raises LedgerError: 403 for a signer that is not an owner,
        409 for a replay or a change the owner set forbids (gateway/config_entry.py)."""
        try:
            change, entry = config_entry.open_request(request, now)
            signer = entry[1 : 1 + 32]
            if change.op in config_entry.ACK_OPS and signer in await self.shared.store.owners():
                await self._check_ack_key_change(change)  # tells owners only
            index = await self.shared.store.append_config(entry)
        except StoreConflict as e:
            raise self.shared.refusals.conflict(e) from None
        except Refused as e:
            raise self.shared.refusals.of(e) from None
        self.changes += 1
        log.info("owners: %s %s", change.op, (change.key or b"").hex()[:12])
        await self.shared.appended()
        return index

    async def _check_ack_key_change(self, change: config_entry.ConfigChange) -> None:
        """Refuse an ack-key change that would change nothing (409 "ack key exists" or
        "not an ack key"): most likely a mistake its sender should hear of. Not a rule of
        the log (such an entry would fold as a no-op), so not checked under the lock.
        Requires an ack-key change (open_request checked its site and key)."""
        assert change.site is not None and change.key is not None
        keys = (await self.authority(await self.shared.store.log_size())).ack_keys
        there = (change.site, change.key) in keys
        if change.op == config_entry.ACK_KEY_ADD and there:
            detail = f"key {change.key.hex()} may acknowledge alarms of site {change.site} already"
            raise config_entry.ConfigError("ack key exists", detail, 409)
        if change.op == config_entry.ACK_KEY_REMOVE and not there:
            detail = f"key {change.key.hex()} may not acknowledge alarms of site {change.site}"
            raise config_entry.ConfigError("not an ack key", detail, 409)

    async def authority_page(self, after: int) -> list[tuple[int, bytes]]:
        """Registry and configuration entries after log index `after` (-1: from the start),
        in log order, up to MAX_AUTHORITY_PAGE, within the latest checkpoint."""
        end = self.shared.log.checkpoint.size
        return await self.shared.store.authority_entries(after, end, MAX_AUTHORITY_PAGE)

    async def authority(self, end: int) -> config_entry.Authority:
        """The owners and acknowledgement keys after every registry and configuration
        entry below log index `end`, folded in log order. Raises ConfigError if the log
        breaks its own rule (the store checked each entry when it appended it)."""
        found: list[bytes] = []
        after = -1
        while page := await self.shared.store.authority_entries(after, end, MAX_AUTHORITY_PAGE):
            found += [entry for _, entry in page]
            after = page[-1][0]
        return config_entry.authority_of(found)

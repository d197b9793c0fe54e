"""Transaction bodies for replay (docs/contracts.md §3, replay grants): the stored contract
transactions (canonical body, signature, the 0x03 commitment's salt, log indices) go only to
a signed-in reader whose key holds a replay grant (0x06 grant-add, gateway/config_entry.py)
for every contract the page holds. Raises LedgerError: 401 "token" (none), 403 "grant".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cloud.contracts import auth, didkey
from cloud.services.config import ConfigService
from cloud.services.shared import Shared
from cloud.storage.store import StoredTx

MAX_PAGE = 1000  # transactions per GET /v1/tx answer


@dataclass(frozen=True)
class Page:
    """Stored transactions after a log index, in log order."""

    rows: list[StoredTx]

    def to_json(self) -> dict[str, Any]:
        return {
            "transactions": [
                {
                    "index": row.log_index,
                    "root_index": row.root_index,
                    "canonical": row.canonical.decode(),
                    "sig": row.sig.hex(),
                    "salt": row.salt.hex(),
                }
                for row in self.rows
            ],
            "next": self.rows[-1].log_index if self.rows else None,
        }


class ReplayService:
    """Pages of stored transactions for granted readers (module docstring)."""

    def __init__(self, shared: Shared, config: ConfigService) -> None:
        self.shared = shared
        self.config = config

    async def page(self, reader: auth.Token | None, after: int, limit: int) -> Page:
        """Up to `limit` stored transactions whose 0x03 entry follows log index `after`
        (-1: from the start). Raises LedgerError 401 "token" without a reader, 403 "grant"
        naming the contract the reader holds no replay grant for."""
        refusals = self.shared.refusals
        if reader is None:
            raise refusals.refuse("token", "sign in (POST /v1/auth/token) to replay", 401)
        key = didkey.to_xonly(reader.did)  # issued by us: a valid did:key
        authority = await self.config.authority(await self.shared.store.log_size())
        if not any(k == key for k, _ in authority.grants):
            raise refusals.refuse("grant", f"{reader.did} holds no replay grant", 403)
        rows = await self.shared.store.contract_txs(after, limit)
        for row in rows:
            contract = json.loads(row.canonical)["contract"]  # stored: checked when applied
            if not authority.may_replay(key, contract):
                detail = f"{reader.did} holds no replay grant for contract {contract!r}"
                raise refusals.refuse("grant", detail, 403)
        return Page(rows)

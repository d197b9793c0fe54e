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
# A page also stops before its bodies pass this many bytes (always one at least): a bulk
# transaction (a lot's pack serials) is up to 4 MiB (tx.MAX_BULK_ENVELOPE), so 1,000 of them
# would be gigabytes. Read from the store a few at a time so a page never holds more.
MAX_PAGE_BYTES = 8 * 1024 * 1024
_CHUNK = 16


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
        rows = await self._rows(after, limit)
        for row in rows:
            contract = json.loads(row.canonical)["contract"]  # stored: checked when applied
            if not authority.may_replay(key, contract):
                detail = f"{reader.did} holds no replay grant for contract {contract!r}"
                raise refusals.refuse("grant", detail, 403)
        return Page(rows)

    async def _rows(self, after: int, limit: int) -> list[StoredTx]:
        """Up to `limit` stored transactions after log index `after` whose bodies stay within
        MAX_PAGE_BYTES (the first one whatever its size), read _CHUNK at a time."""
        rows: list[StoredTx] = []
        size = 0
        while len(rows) < limit:
            want = min(_CHUNK, limit - len(rows))
            chunk = await self.shared.store.contract_txs(after, want)
            for row in chunk:
                size += len(row.canonical)
                if rows and size > MAX_PAGE_BYTES:
                    return rows
                rows.append(row)
            if len(chunk) < want:
                return rows  # the end of the log
            after = chunk[-1].log_index
        return rows

"""The recall trace service (docs/contracts.md §5): a lot's trace for a reader, as the read
policy lets it see it (cloud/contracts/policy.py `trace_access`), from the trace index
(cloud/contracts/lots_trace.py) that follows the contract service's applied transactions.
Raises LedgerError (cloud/services/refusals.py): 403 "participant" or "access", 404 "lot".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cloud.contracts import auth, participants, policy
from cloud.contracts.engine import Forbidden
from cloud.contracts.lots_trace import LotIndex
from cloud.services.contracts import ContractService, Head
from cloud.services.shared import Shared
from gateway.refusal import Refused

PUBLIC = "public"  # the read matrix's row for a reader without a token


@dataclass(frozen=True)
class Trace:
    """A lot's trace as one reader may see it: the state it was read at, and either the
    lots with the holders and shipments of `legs` (each lot's JSON, as the index keeps it:
    LotIndex.encoded), or the global `figures`."""

    gtin: str
    lot: str
    head: Head
    legs: frozenset[str]
    lots: list[bytes] | None
    figures: dict[str, Any] | None

    def encode(self) -> bytes:
        """The answer's JSON (UTF-8): {"gtin", "lot", "state", "view", and "legs" and
        "lots" or the figures}; the lots joined from their kept JSON, not encoded again."""
        answer: dict[str, Any] = {"gtin": self.gtin, "lot": self.lot, "state": self.head.to_json()}
        if self.figures is not None:
            return json.dumps(answer | {"view": "global", **self.figures}).encode()
        assert self.lots is not None
        legs = [leg for leg in policy.LEGS if leg in self.legs]  # the matrix's order
        opening = json.dumps(answer | {"view": "flows", "legs": legs})[:-1]  # without its "}"
        return opening.encode() + b', "lots": [' + b", ".join(self.lots) + b"]}"


class TraceService:
    """Traces over the contract service's state (module docstring)."""

    def __init__(self, shared: Shared, contracts: ContractService) -> None:
        """Build the index empty: register before contracts.load(), which feeds it every
        transaction replayed."""
        self.shared = shared
        self.contracts = contracts
        self.index = LotIndex()
        contracts.listeners.append(lambda _, applied: self.index.apply(applied))

    async def trace(self, gtin: str, lot: str, reader: auth.Token | None) -> Trace:
        """Return the trace of a lot (GTIN and lot number checked by the caller) for
        `reader` (None: the public) at the log's latest state. Raises LedgerError 404 "lot"
        (never commissioned), 403 "participant" (the reader's did is no longer a regulator
        or active participant) or 403 "access" naming the read cell that denies it."""
        head = await self.contracts.current()  # then no await: one state throughout
        refusals = self.shared.refusals
        if not self.index.knows(gtin, lot):
            raise refusals.refuse("lot", f"lot {gtin}/{lot} was never commissioned", 404)
        try:
            if reader is None:
                role, involved = PUBLIC, False
            else:
                who = participants.identify(self.contracts.state, reader.did)
                role, involved = who.role, self.index.involved(gtin, lot, who.id)
            seen = policy.trace_access(role, involved, Forbidden)
        except Refused as e:
            raise refusals.of(e) from None
        if seen.global_only:
            return Trace(gtin, lot, head, seen.legs, None, self.index.figures(gtin, lot))
        return Trace(gtin, lot, head, seen.legs, self.index.encoded(gtin, lot, seen.legs), None)

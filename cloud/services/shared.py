"""What the services share, in one place: the store, the log service, the refusal counter
and the verification threads, with the two steps every service that takes requests repeats —
sign the checkpoint that includes what it just appended, and run CPU-bound checks (BIP-340
verification) off the event loop.

A service takes one Shared (cloud/api/app.py builds it once, in the app's cleanup context)
and keeps nothing of another service's: a new service (a contract's, say) is a class over
Shared plus the formats it applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar, TypeVarTuple, Unpack

from cloud.services.log import LogService, SignedCheckpoint
from cloud.services.refusals import Refusals
from cloud.storage.store import Store

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class Shared:
    """The store, its log, the refusal counter and the verification threads."""

    store: Store
    log: LogService
    refusals: Refusals
    verify_pool: Executor | None = None  # None: the loop's default executor
    verify_threads: int = 1  # the pool's threads (cloud/services/handoff.py splits by it)

    async def appended(self) -> SignedCheckpoint:
        """Sign the checkpoint that includes what was just appended (and whatever other
        workers appended meanwhile) and return it: call after every append, so that what
        the API answers next is covered by a checkpoint."""
        return await self.log.refresh()

    async def off_loop(self, check: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """Run `check(*args)` on the verification threads and return its result (or raise
        its exception): the event loop keeps serving meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self.verify_pool, check, *args)

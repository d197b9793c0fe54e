"""Signature checks on every core, every decision on the event loop in arrival order.

BIP-340 verification is the one step of a reading that cannot be skipped, and
libsecp256k1 (through coincurve's cffi) releases the GIL while it runs, so the gateway
checks signatures on a pool of threads, as the cloud ledger does. Only that pure check
leaves the event loop:

    submit() --(group of readings arrived meanwhile)--> threads: signatures_valid(chunk)
             <--(groups in submission order)-- judge each reading on the loop, in order

Readings are handed over in groups (whatever arrived while the previous group was being
checked, up to GROUP_MAX, split into one chunk per thread), so the hand-off costs per
group, not per reading. A burst is cut into groups of GROUP_MAX, and up to IN_FLIGHT of
them wait with the threads at once, so the threads check the next groups while the event
loop judges one: one group of a whole burst would leave the threads idle while it is
judged, committed and sealed (bench/RESULTS.md, issue 13).

Groups are judged strictly in submission order, and within a group in arrival order, by
one task on the event loop: `Verifier.judge` (sequence numbers, duplicates, time) sees
readings exactly as a single-threaded gateway would, so two copies of one reading can
never both be accepted, whichever thread checked which copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from device import reading
from gateway.registry import Box
from gateway.verify import Outcome, Verifier, signatures_valid

log = logging.getLogger("pharmasync.gateway")
IN_FLIGHT = 4  # groups handed to the threads at once: some checked while one is judged
GROUP_MAX = 1024  # readings per group: a burst is cut so that checking and judging overlap

# A reading that passed Verifier.precheck: (wire, reading, box, received at, context).
Item = tuple[bytes, reading.Reading, Box, float, Any]
# Called on the event loop with each reading's outcome and its context, in arrival order.
OnOutcome = Callable[[Outcome, bytes, float, Any], None]


class _Group:
    __slots__ = ("checks", "items", "judged")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: list[Item] = []
        self.checks: list[asyncio.Future[list[bool]]] = []
        self.judged: asyncio.Future[None] = loop.create_future()


class VerifyPool:
    """Checks signatures on `threads` threads and judges readings in arrival order (see the
    module docstring); `on_outcome` gets every reading's outcome on the event loop."""

    def __init__(self, verifier: Verifier, threads: int, on_outcome: OnOutcome) -> None:
        self.verifier = verifier
        self.threads = threads
        self.on_outcome = on_outcome
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="verify")
        self._arriving: deque[_Group] = deque()  # not yet handed to the threads
        self._in_flight: deque[_Group] = deque()  # handed over, in submission order
        self._dispatch_due = False
        self._judge: asyncio.Task[None] | None = None

    def submit(self, item: Item) -> None:
        """Queue a reading that passed precheck; its outcome follows those submitted before."""
        arriving = self._arriving
        if not arriving or len(arriving[-1].items) >= GROUP_MAX:
            arriving.append(_Group(asyncio.get_running_loop()))
        arriving[-1].items.append(item)
        if not self._dispatch_due:
            # Hand over at the end of this loop iteration: whatever else arrives meanwhile
            # (a socket read holds many messages) travels in the same group.
            self._dispatch_due = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def judged(self) -> None:
        """Return once every reading submitted so far has been judged."""
        group = (
            self._arriving[-1]
            if self._arriving
            else (self._in_flight[-1] if self._in_flight else None)
        )
        if group is not None:
            await asyncio.shield(group.judged)

    def close(self) -> None:
        """Stop the threads (call after `judged`)."""
        self._pool.shutdown(wait=True)

    def _dispatch(self) -> None:
        self._dispatch_due = False
        if not self._arriving or len(self._in_flight) >= IN_FLIGHT:
            return  # the judge dispatches again when a group leaves the threads
        loop = asyncio.get_running_loop()
        while self._arriving and len(self._in_flight) < IN_FLIGHT:
            group = self._arriving.popleft()
            wires = [item[0] for item in group.items]
            size = -(-len(wires) // self.threads)  # one chunk per thread
            group.checks = [
                loop.run_in_executor(self._pool, signatures_valid, wires[i : i + size])
                for i in range(0, len(wires), size)
            ]
            self._in_flight.append(group)
        if self._judge is None or self._judge.done():
            self._judge = loop.create_task(self._judge_in_order(), name="verify-judge")

    async def _judge_in_order(self) -> None:
        judge_now, judge, on_outcome = self.verifier.judge_now, self.verifier.judge, self.on_outcome
        while self._in_flight:
            group = self._in_flight[0]
            try:
                checks = [await c for c in group.checks]
            except Exception:  # signatures_valid never raises; if it did, nothing passes
                log.exception("signature check failed: %d readings refused", len(group.items))
                checks = [[False] * len(group.items)]
            self._in_flight.popleft()
            self._dispatch()  # the threads check the next group while this one is judged
            try:
                for (wire, r, box, now, context), ok in zip(
                    group.items, chain.from_iterable(checks), strict=True
                ):
                    outcome = judge_now(wire, r, box, ok, now)
                    if outcome is None:  # a copy of a committed seq: fetch the stored bytes
                        outcome = await judge(wire, r, box, ok, now)
                    on_outcome(outcome, wire, now, context)
            finally:  # whoever waits for this group is released, even if judging failed
                group.judged.set_result(None)

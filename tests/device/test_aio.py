"""device/aio.py: a wait_for whose cancellation is never lost (CPython gh-86296), so a box's
loop stops when its task is cancelled (Ctrl-C in `device run`, the demo, the simulator)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from device import aio


async def _loop_on(event: asyncio.Event, woke: list[int]) -> None:
    """A firmware-style loop: wait for new work with a timeout, forever."""
    while True:
        event.clear()
        with contextlib.suppress(TimeoutError):
            await aio.wait_for(event.wait(), 10)
        woke.append(1)


async def test_a_cancel_that_coincides_with_the_wake_up_still_stops_the_loop() -> None:
    # The race of gh-86296: the awaited event is set and the task cancelled in the same
    # turn of the loop. asyncio.wait_for on 3.11 returns the result and drops the cancel.
    for _ in range(50):
        event, woke = asyncio.Event(), []
        task = asyncio.create_task(_loop_on(event, woke))
        await asyncio.sleep(0)  # it waits in wait_for
        event.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert task in done and task.cancelled(), "the cancellation was lost"


async def test_it_returns_the_result_or_raises_timeout_error() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await aio.wait_for(answer(), 1) == 42
    with pytest.raises(TimeoutError):
        await aio.wait_for(asyncio.sleep(5), 0.01)

"""The hand-off to the verification threads (cloud/services/handoff.py): the items that
arrive in one turn of the event loop go over as one job per thread, each caller gets its own
item's result or exception, and a caller cancelled meanwhile leaves the others answered."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloud.services.handoff import Handoff


class Odd(ValueError):
    pass


class Counted:
    """A check that doubles even numbers and refuses odd ones, recording each item it
    checks and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, n: int) -> int:
        with self.lock:
            self.calls.append((threading.get_ident(), n))
        if n % 2:
            raise Odd(f"{n} is odd")
        return 2 * n


async def test_a_turns_items_go_over_in_one_job_per_thread() -> None:
    check = Counted()
    with ThreadPoolExecutor(2) as pool:
        handoff = Handoff(check, pool, threads=2)
        jobs: list[list[int]] = []
        real = handoff._check_all

        def recorded(items: list[int]) -> list[tuple[bool, object]]:
            jobs.append(list(items))
            return real(items)

        handoff._check_all = recorded  # type: ignore[method-assign]
        answers = await asyncio.gather(*(handoff(n) for n in range(10)), return_exceptions=True)
    assert [a if isinstance(a, int) else str(a) for a in answers] == [
        0, "1 is odd", 4, "3 is odd", 8, "5 is odd", 12, "7 is odd", 16, "9 is odd"
    ]  # fmt: skip
    assert jobs == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # two chunks, in arrival order
    assert sorted(n for _, n in check.calls) == list(range(10))


async def test_later_turns_are_later_jobs_and_one_item_is_a_job_of_one() -> None:
    with ThreadPoolExecutor(2) as pool:
        handoff = Handoff(Counted(), pool, threads=2)
        assert await handoff(4) == 8
        with pytest.raises(Odd, match="3 is odd"):
            await handoff(3)
        assert await asyncio.gather(handoff(2), handoff(6)) == [4, 12]


async def test_a_cancelled_caller_leaves_the_others_answered() -> None:
    gate = threading.Event()

    def slow(n: int) -> int:
        gate.wait(5)
        return n + 1

    with ThreadPoolExecutor(1) as pool:
        handoff = Handoff(slow, pool, threads=1)
        first = asyncio.ensure_future(handoff(1))
        second = asyncio.ensure_future(handoff(2))
        await asyncio.sleep(0.01)  # both handed over, waiting on the gate
        first.cancel()
        gate.set()
        assert await second == 3
        with pytest.raises(asyncio.CancelledError):
            await first

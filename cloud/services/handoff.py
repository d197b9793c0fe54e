"""Checks handed to the verification threads together: what arrives in one turn of the event
loop goes over as one job per thread, not one job per item.

A busy server receives many requests per turn of its event loop (one read of every ready
socket). Handing each request's check to the threads on its own (`run_in_executor`) costs a
concurrent future, a wake-up of the loop through its self-pipe and a callback per item, all
under the interpreter lock the checks compete for; here the items gathered in one turn are
split into one chunk per thread, and each chunk's answers come back in one wake-up. Each
caller still gets its own item's result or exception, and a caller cancelled meanwhile
just gets nothing (its item is checked anyway: checks have no side effects).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_Answer = tuple[bool, object]  # (True, the result) or (False, the exception)


class Handoff(Generic[In, Out]):
    """Run `check` over items on `pool`'s `threads` threads, items that arrive in the same
    turn of the event loop handed over together (module docstring)."""

    def __init__(self, check: Callable[[In], Out], pool: Executor | None, threads: int) -> None:
        """`pool`: None for the loop's default executor; `threads`: how many chunks a
        turn's items are split into (the pool's threads)."""
        self.check = check
        self.pool = pool
        self.threads = max(1, threads)
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []

    async def __call__(self, item: In) -> Out:
        """Return check(item), run on the threads (or raise its exception)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Out] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._hand_over, loop)  # after the turn's other arrivals
        self._waiting.append((item, answer))
        return await answer

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting, self._waiting = self._waiting, []
        size = -(-len(waiting) // self.threads)
        for start in range(0, len(waiting), size):
            chunk = waiting[start : start + size]
            job = loop.run_in_executor(self.pool, self._check_all, [item for item, _ in chunk])
            job.add_done_callback(partial(_answer, chunk))

    def _check_all(self, items: list[In]) -> list[_Answer]:
        """On a thread: each item's result or exception."""
        answers: list[_Answer] = []
        for item in items:
            try:
                answers.append((True, self.check(item)))
            except Exception as e:  # handed to its caller, who raises it
                answers.append((False, e))
        return answers


def _answer(
    chunk: list[tuple[In, asyncio.Future[Out]]], done: asyncio.Future[list[_Answer]]
) -> None:
    """On the loop: give each waiting caller its answer (the job's own failure, if it
    failed as a whole), skipping callers cancelled meanwhile."""
    if done.cancelled():
        for _, future in chunk:
            future.cancel()
        return
    failed = done.exception()
    answers = [(False, failed)] * len(chunk) if failed is not None else done.result()
    for (_, future), (ok, value) in zip(chunk, answers, strict=True):
        if future.done():
            continue
        if ok:
            future.set_result(value)  # type: ignore[arg-type]  # check's Out
        else:
            assert isinstance(value, BaseException)
            future.set_exception(value)

"""`wait_for` that never loses a cancellation, for device code that also runs on CPython.

On CPython 3.11, asyncio.wait_for can swallow a cancellation that coincides with its
wake-up (CPython gh-86296): a box's loop that waits in wait_for then never stops, and
whatever awaits it (Ctrl-C in `device run`, the demo, the simulator) hangs. CPython 3.11+
has asyncio.timeout, which does not; MicroPython has no asyncio.timeout and its own
wait_for has no such race, so it keeps that.
"""

import asyncio

try:
    _timeout = asyncio.timeout
except AttributeError:  # MicroPython
    wait_for = asyncio.wait_for
else:

    async def wait_for(awaitable, timeout):
        """Await `awaitable` for at most `timeout` seconds; raise TimeoutError after."""
        async with _timeout(timeout):
            return await awaitable

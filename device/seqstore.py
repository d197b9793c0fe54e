"""Reading sequence numbers that are never reused, even if power fails mid-write.

The store hands out numbers from a block it has reserved on flash beforehand: the file
holds the first number NOT yet reserved (the high-water mark). Reserving writes a new
mark to a temporary file and renames it over the old one, which is atomic on littlefs
and POSIX; a torn write is detected by the check value and ignored. A number is handed
out only after the block holding it is durable, so after any crash the next boot starts
at or above every number ever used. The cost is a gap of up to one block per reboot,
which receivers must accept (sequence numbers are increasing, not contiguous).

Deep-sleeping boxes keep their next number in RTC memory (`resume`), so a wake from deep
sleep does not burn a block; a power loss clears RTC memory and falls back to the mark.
"""

from device.flash import write_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


BLOCK = const(16)
SEQ_LIMIT = const(0xFFFFFFFF)  # the reading format's u32
_CHECK = const(0x5EC5EC5E)  # torn-write detector: a line is "<mark> <mark ^ _CHECK>"


class SeqExhausted(Exception):
    """All 2**32 sequence numbers of this box key are used: provision a new key."""


def _read_mark(path):
    """Return the mark stored at `path`, or None if it is absent or not intact."""
    try:
        with open(path) as f:
            parts = f.read().split()
    except OSError:
        return None
    try:
        mark, check = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    return mark if mark ^ _CHECK == check else None


class SeqStore:
    """Hands out increasing sequence numbers, persisting a reservation ahead of use."""

    def __init__(self, path, block=BLOCK, resume=None):
        self.path = path
        self.block = block
        # A .tmp file may hold a newer intact mark whose rename did not happen: its numbers
        # were never handed out, so starting above it is safe (and it might be on FAT).
        marks = [m for m in (_read_mark(path), _read_mark(path + ".tmp")) if m is not None]
        self.mark = max(marks) if marks else 0
        if resume is not None and self.mark - block <= resume <= self.mark:
            self._next = resume  # woke from deep sleep: the block is still ours
        else:
            self._next = self.mark
        self._limit = self.mark  # numbers below the durable mark need no new reservation

    def next(self):
        """Return the next unused number. Raises SeqExhausted after 2**32 numbers."""
        n = self._next
        if n > SEQ_LIMIT:
            raise SeqExhausted("sequence numbers exhausted: got %d, limit %d" % (n, SEQ_LIMIT))
        if n >= self._limit:
            self._reserve(n + self.block)
        self._next = n + 1
        return n

    def peek(self):
        """Return the number next() will hand out (to keep in RTC memory before sleeping)."""
        return self._next

    def _reserve(self, mark):
        write_atomic(self.path, "%d %d\n" % (mark, mark ^ _CHECK))
        self.mark = self._limit = mark

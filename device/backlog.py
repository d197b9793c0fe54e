"""The box's backlog: a bounded ring buffer of signed readings on flash, kept until the
gateway acknowledges them end to end.

Every reading goes here before it is sent, so a reading survives a broker outage, a
network outage and a reboot. Two files:

    <path>.bin    `slots` fixed 110-byte slots; reading k (counting from the first ever
                  stored) lives in slot k % slots
    <path>.meta   "head tail dropped check": readings head..tail-1 are pending; replaced
                  atomically after every change (see seqstore.write_atomic)

When the ring is full the oldest pending reading is dropped and counted, never the new one.
The default 4,096 slots are 450,560 bytes of flash: 68 hours at the 60 s interval.
"""

from device import reading
from device.flash import fsync, write_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SLOTS = const(4096)
_SIZE = const(110)  # reading.SIZE
_CHECK = const(0xBAC106)


class Backlog:
    """Pending readings in the order they were taken, durable across reboots."""

    def __init__(self, path, slots=SLOTS):
        self.bin = path + ".bin"
        self.meta = path + ".meta"
        self.slots = slots
        self.head, self.tail, self.dropped = self._load()
        self._buf = bytearray(_SIZE)
        try:
            open(self.bin, "rb").close()
        except OSError:
            open(self.bin, "wb").close()

    def _load(self):
        for name in (self.meta, self.meta + ".tmp"):
            try:
                with open(name) as f:
                    head, tail, dropped, check = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            if head ^ tail ^ dropped ^ _CHECK == check and 0 <= tail - head <= self.slots:
                return head, tail, dropped
        return 0, 0, 0

    def _save(self):
        h, t, d = self.head, self.tail, self.dropped
        write_atomic(self.meta, "%d %d %d %d\n" % (h, t, d, h ^ t ^ d ^ _CHECK))

    def __len__(self):
        return self.tail - self.head

    def append(self, wire):
        """Store a signed reading durably; drop (and count) the oldest if the ring is full."""
        if len(wire) != _SIZE:
            raise ValueError("reading: got %d bytes, want %d" % (len(wire), _SIZE))
        slot = self.tail % self.slots
        with open(self.bin, "r+b") as f:
            f.seek(slot * _SIZE)
            f.write(wire)
            fsync(f)
        if self.tail - self.head == self.slots:
            self.head += 1
            self.dropped += 1
        self.tail += 1
        self._save()

    def get(self, index):
        """Return pending reading number `index` (head <= index < tail) as bytes."""
        if not self.head <= index < self.tail:
            raise IndexError("backlog index %d not in %d..%d" % (index, self.head, self.tail - 1))
        with open(self.bin, "rb") as f:
            f.seek((index % self.slots) * _SIZE)
            f.readinto(self._buf)
        return bytes(self._buf)

    def seq_at(self, index):
        """Return the sequence number of pending reading `index`."""
        return reading.seq_of(self.get(index))

    def ack(self, seq):
        """Forget every pending reading with a sequence number <= seq; return how many."""
        start = self.head
        while self.head < self.tail and self.seq_at(self.head) <= seq:
            self.head += 1
        if self.head != start:
            self._save()
        return self.head - start

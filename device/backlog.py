"""The box's backlog: a bounded ring buffer of signed readings on flash, kept until the
gateway acknowledges them end to end.

Every reading goes here before it is sent, so a reading survives a broker outage, a
network outage and a reboot. Three files:

    <path>.bin    `slots` fixed 110-byte slots; reading k (counting from the first ever
                  stored) lives in slot k % slots
    <path>.meta   "head tail dropped check": readings head..tail-1 are held; replaced
                  atomically after every change (see flash.write_atomic)
    <path>.acked  one bit per slot (slot k: byte k >> 3, bit k & 7), set when the held
                  reading in that slot is acknowledged, + u32 check; replaced atomically

Acknowledgements need not be a prefix (device/ack.py lists ranges), so a reading in the
middle can be acknowledged while an older one is still held: its bit is set, and the head
moves past a run of acknowledged slots only when it reaches them. Bits outside
head..tail-1 are always 0 on flash: the bitmap is saved (bits of passed slots cleared)
before the meta moves the head, so a crash between the two leaves readings held that were
acknowledged, never the other way round: at worst a duplicate is resent, never a loss.

Sequence numbers increase with the slot index, so an acknowledged range is found by
binary search (reading 4 bytes per probe), not by reading every slot.

When the ring is full the oldest held reading is dropped and counted, never the new one.
The default 4,096 slots are 450,560 bytes of flash (+ 516 bytes of bitmap): 68 hours at
the 60 s interval.
"""

import struct

from device.flash import fsync, write_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SLOTS = const(4096)
_SIZE = const(110)  # reading.SIZE
_SEQ_OFFSET = const(33)  # reading.seq_of
_CHECK = const(0xBAC106)
_BITS_CHECK = const(0xAC4ED)
MISSING_MAX = const(32)  # held readings reported missing per ack (resent at once)


class Backlog:
    """Held readings in the order they were taken, durable across reboots."""

    def __init__(self, path, slots=SLOTS):
        self.bin = path + ".bin"
        self.meta = path + ".meta"
        self.bits_path = path + ".acked"
        self.slots = slots
        self.head, self.tail, self.dropped = self._load()
        self._buf = bytearray(_SIZE)
        self._seqbuf = bytearray(4)
        self.bits = self._load_bits()
        self.acked = 0  # held readings whose bit is set
        for i in range(self.head, self.tail):
            if self._bit(i):
                self.acked += 1
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

    def _load_bits(self):
        n = (self.slots + 7) >> 3
        for name in (self.bits_path, self.bits_path + ".tmp"):
            try:
                with open(name, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if len(data) == n + 4 and struct.unpack_from(">I", data, n)[0] == _sum(data, n):
                return bytearray(data[:n])
        return bytearray(n)  # all held readings unacknowledged: safe, at worst resent

    def _save(self):
        h, t, d = self.head, self.tail, self.dropped
        write_atomic(self.meta, "%d %d %d %d\n" % (h, t, d, h ^ t ^ d ^ _CHECK))

    def _save_bits(self):
        n = len(self.bits)
        write_atomic(self.bits_path, bytes(self.bits) + struct.pack(">I", _sum(self.bits, n)))

    def _bit(self, index):
        k = index % self.slots
        return self.bits[k >> 3] & (1 << (k & 7))

    def _set(self, index, on):
        k = index % self.slots
        if on:
            self.bits[k >> 3] |= 1 << (k & 7)
        else:
            self.bits[k >> 3] &= ~(1 << (k & 7)) & 0xFF

    def __len__(self):
        """Held readings not yet acknowledged."""
        return self.tail - self.head - self.acked

    def is_acked(self, index):
        """True if held reading `index` was acknowledged (it is no longer sent)."""
        return bool(self._bit(index))

    def append(self, wire):
        """Store a signed reading durably; drop (and count) the oldest if the ring is full."""
        if len(wire) != _SIZE:
            raise ValueError("reading: got %d bytes, want %d" % (len(wire), _SIZE))
        if self.tail - self.head == self.slots:
            self.head += 1  # its slot is the one the new reading takes
            self.dropped += 1
            if self._advance():
                self._save_bits()  # before the slot is reused
        slot = self.tail % self.slots
        with open(self.bin, "r+b") as f:
            f.seek(slot * _SIZE)
            f.write(wire)
            fsync(f)
        self.tail += 1
        self._save()

    def _advance(self):
        """Move the head past acknowledged slots, clearing their bits; return True if any."""
        moved = False
        while self.head < self.tail and self._bit(self.head):
            self._set(self.head, False)
            self.acked -= 1
            self.head += 1
            moved = True
        return moved

    def get(self, index):
        """Return held reading number `index` (head <= index < tail) as bytes."""
        if not self.head <= index < self.tail:
            raise IndexError("backlog index %d not in %d..%d" % (index, self.head, self.tail - 1))
        with open(self.bin, "rb") as f:
            f.seek((index % self.slots) * _SIZE)
            f.readinto(self._buf)
        return bytes(self._buf)

    def seq_at(self, index):
        """Return the sequence number of held reading `index` (reads 4 bytes)."""
        if not self.head <= index < self.tail:
            raise IndexError("backlog index %d not in %d..%d" % (index, self.head, self.tail - 1))
        with open(self.bin, "rb") as f:
            f.seek((index % self.slots) * _SIZE + _SEQ_OFFSET)
            f.readinto(self._seqbuf)
        return struct.unpack_from(">I", self._seqbuf, 0)[0]

    def find(self, seq):
        """Return the first held index whose seq is >= `seq` (tail if none)."""
        lo, hi = self.head, self.tail
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.seq_at(mid) < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def ack_ranges(self, ranges):
        """Acknowledge every held reading whose seq is in one of `ranges` (ascending
        (first, last) pairs, as device/ack.py decodes them).

        Returns (forgotten, missing): how many readings were newly acknowledged, and the
        indexes (at most MISSING_MAX, oldest first) of held, unacknowledged readings whose
        seq lies between the first and the last range but in none: the gateway has not
        stored them, so the box resends them.
        """
        if not ranges or self.head == self.tail:
            return 0, []
        forgotten = 0
        missing = []
        start = self.find(ranges[0][0])
        i = start
        for first, last in ranges:
            # Held readings before this range (and after the previous one) are missing.
            j = self.find(first) if i < self.tail and self.seq_at(i) < first else i
            while i < j:
                if not self._bit(i) and len(missing) < MISSING_MAX:
                    missing.append(i)
                i += 1
            end = self.find(last + 1)
            while i < end:
                if not self._bit(i):
                    self._set(i, True)
                    self.acked += 1
                    forgotten += 1
                i += 1
            if i >= self.tail:
                break
        if forgotten:
            head = self.head
            self._advance()
            self._save_bits()  # first: see the module docstring
            if self.head != head:
                self._save()
        return forgotten, missing

    def ack(self, seq):
        """Acknowledge every held reading with seq <= `seq` (a version-1 ack); return how many."""
        if self.head == self.tail or self.seq_at(self.head) > seq:
            return 0
        return self.ack_ranges([(self.seq_at(self.head), seq)])[0]


def _sum(data, n):
    """A small check over the first n bytes, so a torn bitmap file is detected."""
    s = _BITS_CHECK
    for i in range(n):
        s = (s * 31 + data[i]) & 0xFFFFFFFF
    return s

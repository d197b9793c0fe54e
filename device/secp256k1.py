"""secp256k1 field and group arithmetic for BIP-340, in pure Python that runs on MicroPython.

Points are Jacobian tuples (X, Y, Z) standing for the affine point (X/Z^2, Y/Z^3), or None
for the point at infinity; `to_affine` gives (x, y). Scalars and coordinates are ints.

k*G uses a signed fixed-base comb over an 8 KiB table built once, lazily (see `mul_g`);
k*P for other points uses signed 4-bit windows (see `mul`). Nothing here is constant-time:
MicroPython's and CPython's big integers are not, so do not expose a device to an attacker
who can time many signatures.
"""

try:
    from micropython import const
except ImportError:  # CPython: const() only marks compile-time constants on MicroPython.

    def const(x):
        return x


# SEC 2 v2, section 2.4.1: y^2 = x^3 + 7 over F_P; G has prime order N and the cofactor is 1,
# so every point but infinity has order N and there is no point with y = 0.
P = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F)
N = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141)
GX = const(0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798)
GY = const(0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)
_B = const(7)
# Square roots mod P: P = 3 (mod 4), so sqrt(c) = c^((P+1)/4) when c is a square.
_SQRT_EXP = const((P + 1) // 4)

# mul(): scalars are recoded into 64 signed base-16 digits d_w in [-7, 8]: k = sum d_w * 16^w.
_WINDOW_BITS = const(4)
_RADIX = const(16)
_WINDOWS = const(64)
_DIGIT_MAX = const(8)
_DIGIT_BIAS = const(8)  # digits are stored as d + 8 in a bytearray
_TOP_BIT = const(255)  # scalars >= 2^255 are negated first so the top digit never carries out
_COORD_BYTES = const(32)
_ENTRY_BYTES = const(64)  # an affine point in a table: x || y, 32 bytes big-endian each

# mul_g(): a signed-digit fixed-base comb (M. Hamburg, "Fast and compact elliptic-curve
# cryptography", IACR ePrint 2012/309, section 3.3; libsecp256k1's ecmult_gen since
# bitcoin-core/secp256k1 PR #1058), with one block of 8 teeth spaced 32 bits apart. The
# scalar is rewritten as d with k = sum_i (2*bit_i(d) - 1) * 2^i over i < 256, and bit
# 32j + c of d is tooth j of column c. Each column selects one table point, which the
# doublings of later columns scale by 2^c: 31 doublings and 31 mixed additions in all,
# against ~60 mixed additions with 4-bit windows, from an 8 KiB table (128 affine points)
# instead of 32 KiB; bench/crypto.py measures its speed, heap cost and build time.
_COMB_TEETH = const(8)
_COMB_COLUMNS = const(32)  # the tooth spacing; 8 teeth * 32 columns = 256 bits
# A column's index has bit j for tooth j. The table holds the 128 indexes with tooth 7 set;
# the other 128 points are their negations.
_COMB_TOP = const(0x80)
_COMB_LOW = const(0x7F)
# (2^256 - 1) mod N: d = (k + 2^256 - 1) / 2 mod N makes sum_i (2*bit_i(d) - 1) * 2^i = k.
_COMB_OFFSET = const(0x14551231950B75FC4402DA1732FC9BEBE)
# Delta-swap masks for transposing d's 8 rows (teeth) x 32 columns of bits in 8x8 blocks,
# bit (row j, column c) at 32j + c; see _comb_columns. Each marks the lower bit of a pair.
_SWAP4 = const(0xF0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0)  # rows 0-3, columns 4-7 of a block
_SWAP2 = const(0xCCCCCCCCCCCCCCCC0000000000000000CCCCCCCCCCCCCCCC)
_SWAP1 = const(0xAAAAAAAA00000000AAAAAAAA00000000AAAAAAAA00000000AAAAAAAA)
# The table lives in 4 bytearrays of 32 points (2 KiB each), so that no allocation needs
# more than 2 KiB of contiguous heap: a fragmented 64 KB heap failed a single 32 KiB one.
_CHUNK_SHIFT = const(5)
_CHUNK_POINTS = const(32)
_CHUNK_MASK = const(31)
_CHUNKS = const(4)
_CHUNK_BYTES = const(2048)
# After _comb_columns, column c's index is byte 4*(c % 8) + c // 8; mul_g takes column 31
# (byte 31) first, then these bytes for columns 30, 29, ..., 0.
_COLUMN_BYTES = bytes(4 * (c & 7) + (c >> 3) for c in range(_COMB_COLUMNS - 2, -1, -1))

_table = None  # the comb table, built on first use by mul_g


def inverse(a, m=P):
    """Return a^-1 mod m; requires m prime and a not a multiple of m (returns 0 for those)."""
    # Extended Euclid: under MicroPython 60 us for 256 bits, against 420 us for pow(a, m-2, m).
    x0 = 0
    x1 = 1
    r0 = m
    r1 = a % m
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        x0, x1 = x1, x0 - q * x1
    return x0 % m


def lift_x(x):
    """Return the even y with (x, y) on the curve, or None if x >= P or no such point exists."""
    # BIP-340, "Specification", lift_x.
    if x >= P:
        return None
    c = (x * x * x + _B) % P
    y = pow(c, _SQRT_EXP, P)
    if y * y % P != c:
        return None
    return y if y & 1 == 0 else P - y


def to_affine(pt):
    """Return the affine (x, y) of a Jacobian point, or None for infinity (one inversion)."""
    if pt is None:
        return None
    X, Y, Z = pt
    zi = inverse(Z)
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 * zi % P


def double(pt):
    """Return 2*pt for a Jacobian point (None is infinity)."""
    if pt is None:
        return None
    # dbl-2009-l (a = 0), 2M + 5S; no finite point has y = 0, so the result is finite.
    X, Y, Z = pt
    p = P
    a = X * X % p
    b = Y * Y % p
    c = b * b % p
    t = X + b
    d = 2 * (t * t - a - c) % p
    e = 3 * a
    f = e * e % p
    X3 = (f - 2 * d) % p
    return X3, (e * (d - X3) - 8 * c) % p, 2 * Y * Z % p


def add(p1, p2):
    """Return p1 + p2 for Jacobian points (None is infinity); handles p1 = +-p2."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    # add-1998-cmo-2, 12M + 4S.
    X1, Y1, Z1 = p1
    X2, Y2, Z2 = p2
    p = P
    z1z1 = Z1 * Z1 % p
    z2z2 = Z2 * Z2 % p
    u1 = X1 * z2z2 % p
    s1 = Y1 * Z2 * z2z2 % p
    h = (X2 * z1z1 - u1) % p
    r = (Y2 * Z1 * z1z1 - s1) % p
    if h == 0:
        # Same x: the points are equal (double) or opposite (their sum is infinity).
        return double(p1) if r == 0 else None
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    return X3, (r * (v - X3) - s1 * hhh) % p, Z1 * Z2 * h % p


def _recode(k):
    """Return (negated, digits): k or N-k (whichever is < 2^255) as 64 signed base-16 digits.

    digits[w] holds d_w + 8 with d_w in [-7, 8]; requires 1 <= k < N.
    """
    # Below 2^255 the top nibble is <= 7, so with a carry the top digit is <= 8: no 65th window.
    negated = k >> _TOP_BIT
    if negated:
        k = N - k
    digits = bytearray(_WINDOWS)
    kb = k.to_bytes(_COORD_BYTES, "big")
    carry = 0
    for w in range(_WINDOWS):
        byte = kb[_COORD_BYTES - 1 - (w >> 1)]  # big-endian: window 0 is the last byte's low nibble
        d = (byte >> _WINDOW_BITS if w & 1 else byte & (_RADIX - 1)) + carry
        carry = 0
        if d > _DIGIT_MAX:
            d -= _RADIX
            carry = 1
        digits[w] = d + _DIGIT_BIAS
    return negated, digits


def _to_affine_in_place(blob, zs, count):
    """Turn the first `count` Jacobian points of blob into affine x || y.

    Entry i of blob holds X || Y and zs[32i : 32i + 32] its Z; the rest of zs is scratch.
    Montgomery's trick: one inversion of the product of all Z, then 3 mults per point.
    """
    p = P
    from_bytes = int.from_bytes
    # Forward: the product of Z_0 .. Z_{i-1}, kept in zs after the Z (MicroPython ints of
    # 256 bits take ~130 bytes of heap each, 32 bytes here).
    half = count * _COORD_BYTES
    acc = 1
    for o in range(0, half, _COORD_BYTES):
        zs[half + o : half + o + _COORD_BYTES] = acc.to_bytes(_COORD_BYTES, "big")
        acc = acc * from_bytes(zs[o : o + _COORD_BYTES], "big") % p
    inv = inverse(acc)  # 1 / (Z_0 ... Z_{count-1})
    for i in range(count - 1, -1, -1):
        o = i * _COORD_BYTES
        zi = inv * from_bytes(zs[half + o : half + o + _COORD_BYTES], "big") % p
        inv = inv * from_bytes(zs[o : o + _COORD_BYTES], "big") % p
        zi2 = zi * zi % p
        o = i * _ENTRY_BYTES
        y_at = o + _COORD_BYTES
        end = o + _ENTRY_BYTES
        blob[o:y_at] = (from_bytes(blob[o:y_at], "big") * zi2 % p).to_bytes(_COORD_BYTES, "big")
        y = from_bytes(blob[y_at:end], "big") * zi2 * zi % p
        blob[y_at:end] = y.to_bytes(_COORD_BYTES, "big")


def _build_table():
    """Return the comb table: 4 bytearrays of 32 affine points; entry e (chunk e // 32,
    point e % 32) is 2^224 * G + sum_{j < 7} (2*bit_j(e) - 1) * 2^(32j) * G.
    """
    # The chunks are allocated first, while the heap is least fragmented: built after the
    # points, a 2 KiB block failed in an 80 KB heap with 68 KB free.
    table = (
        bytearray(_CHUNK_BYTES),
        bytearray(_CHUNK_BYTES),
        bytearray(_CHUNK_BYTES),
        bytearray(_CHUNK_BYTES),
    )
    # Jacobian X || Y go straight into a chunk, and Z and the running products into this
    # scratch: a chunk's 32 Jacobian points as tuples of ints would hold ~12 KB of heap.
    zs = bytearray(_CHUNK_BYTES)
    # Entry 0 is S = 2^224*G - sum_{j<7} 2^(32j)*G; setting bit j of e adds D_j = 2^(32j+1)*G,
    # which turns tooth j's -1 into +1. So each entry is one addition to an earlier entry of
    # its chunk, and each chunk needs one batched inversion.
    pt = (GX, GY, 1)  # 2^(32j) * G
    s = None
    doubled = []  # D_j for j = 0..6
    for _ in range(_COMB_TEETH - 1):
        s = add(s, (pt[0], P - pt[1], pt[2]))
        pt = double(pt)
        doubled.append(pt)
        for _ in range(_COMB_COLUMNS - 1):
            pt = double(pt)
    s = add(s, pt)
    from_bytes = int.from_bytes
    for chunk in range(_CHUNKS):
        blob = table[chunk]
        # The chunk number is bits 5 and 6 of the entry: teeth 5 and 6.
        pt = s
        if chunk & 1:
            pt = add(pt, doubled[5])
        if chunk & 2:
            pt = add(pt, doubled[6])
        top = 0  # the highest set bit of i
        for i in range(_CHUNK_POINTS):
            if i:
                if i >> (top + 1):
                    top += 1
                j = i - (1 << top)
                o = j * _ENTRY_BYTES
                y_at = o + _COORD_BYTES
                z_at = j * _COORD_BYTES
                earlier = (
                    from_bytes(blob[o:y_at], "big"),
                    from_bytes(blob[y_at : o + _ENTRY_BYTES], "big"),
                    from_bytes(zs[z_at : z_at + _COORD_BYTES], "big"),
                )
                pt = add(earlier, doubled[top])
            o = i * _ENTRY_BYTES
            blob[o : o + _COORD_BYTES] = pt[0].to_bytes(_COORD_BYTES, "big")
            blob[o + _COORD_BYTES : o + _ENTRY_BYTES] = pt[1].to_bytes(_COORD_BYTES, "big")
            o = i * _COORD_BYTES
            zs[o : o + _COORD_BYTES] = pt[2].to_bytes(_COORD_BYTES, "big")
        _to_affine_in_place(blob, zs, _CHUNK_POINTS)
    return table


def g_table():
    """Return the comb table for k*G (a tuple of 4 bytearrays of 2 KiB), building it once.

    Building takes 224 doublings, ~135 additions and 4 inversions (see bench/crypto.py).
    """
    global _table
    if _table is None:
        _table = _build_table()
    return _table


def mul_g(k):
    """Return k*G as a Jacobian point (None when k = 0 mod N)."""
    k %= N
    if k == 0:
        return None
    return _mul_g_comb(g_table(), k)


def _comb_columns(k):
    """Return 32 bytes holding the comb index of every column for k; requires 0 <= k < N.

    The index of column c is byte 4*(c % 8) + c // 8, its bit j being bit 32j + c of
    d = (k + 2^256 - 1) / 2 mod N, so that k = sum_i (2*bit_i(d) - 1) * 2^i (mod N).
    """
    v = (k + _COMB_OFFSET) % N
    d = (v if v & 1 == 0 else v + N) >> 1  # N is odd: halve v or v + N, whichever is even
    # Transpose each 8x8 block of bits (rows j, columns 8q..8q+7) in place with three
    # delta-swaps of the whole 256-bit int: bit (j, 8q + r) moves to (r, 8q + j), which is
    # byte 4r + q of the little-endian result. 18 big-int operations instead of 256
    # single-bit extractions: 2 us against 14 us per signature under MicroPython.
    t = ((d >> 124) ^ d) & _SWAP4  # (j, r) <-> (j + 4, r - 4) for j < 4 <= r
    d ^= t ^ (t << 124)
    t = ((d >> 62) ^ d) & _SWAP2  # (j, r) <-> (j + 2, r - 2) for j % 4 < 2 <= r % 4
    d ^= t ^ (t << 62)
    t = ((d >> 31) ^ d) & _SWAP1  # (j, r) <-> (j + 1, r - 1) for even j, odd r
    d ^= t ^ (t << 31)
    return d.to_bytes(_COORD_BYTES, "little")


def _comb_point(table, index):
    """Return the affine (x, y) that comb index `index` (0..255) selects from the table."""
    # Index m with tooth 7 set is entry m - 128. Without it, every sign flips: the point is
    # the negation of entry (255 - m) - 128 = m ^ 127.
    if index & _COMB_TOP:
        e = index & _COMB_LOW
    else:
        e = index ^ _COMB_LOW
    blob = table[e >> _CHUNK_SHIFT]
    o = (e & _CHUNK_MASK) * _ENTRY_BYTES
    x = int.from_bytes(blob[o : o + _COORD_BYTES], "big")
    y = int.from_bytes(blob[o + _COORD_BYTES : o + _ENTRY_BYTES], "big")
    return x, (y if index & _COMB_TOP else P - y)


def _mul_g_comb(table, k):
    """Fast path of mul_g for 1 <= k < N: 32 table lookups, 31 doublings, 31 mixed additions.

    Returns None for k = 0 (the last addition meets acc = -T). Column c's point T_c is
    sum_j s_cj * 2^(32j) * G with signs s_cj = +-1, so acc = sum_c 2^c * T_c = k*G.
    """
    # No T_c is infinity: 0 < |sum_j s_cj * 2^(32j)| < 2^225 < N.
    # Exceptional additions (acc = +-T_c) happen only in column 0. Before adding column c,
    # acc = A*G with A = sum over c' > c, j of s * 2^(c' - c + 32j), and T_c = B*G with
    # B = sum_j s * 2^(32j). A + B and A - B are sums of +-2^e over distinct exponents
    # e <= 255 - c, so each is an odd multiple of 2^(min e), never 0, and below 2^(256 - c)
    # in size. For c >= 1 that is below 2^255 < N: acc != +-T_c, so no partial sum is
    # infinity, Z never becomes 0, and the plain formulas below are exact. In column 0,
    # A + B = k mod N, so:
    # - acc = -T_0 means k = 0 mod N (excluded by the caller; the result is infinity);
    # - acc = T_0 means A - B = +-N; each of N and -N has one such +-1 representation, so
    #   exactly two scalars k do this (tests/device/test_bip340.py constructs both); the
    #   result is 2*acc.
    cols = _comb_columns(k)
    p = P
    from_bytes = int.from_bytes
    X, Y = _comb_point(table, cols[_COMB_COLUMNS - 1])
    Z = 1
    for i in _COLUMN_BYTES:
        # Doubling dbl-2009-l (a = 0), 2M + 5S; acc is finite and no point has y = 0.
        a = X * X % p
        b = Y * Y % p
        c = b * b % p
        t = X + b
        t = 2 * (t * t - a - c) % p
        a *= 3
        X3 = (a * a - 2 * t) % p
        Z = 2 * Y * Z % p
        Y = (a * (t - X3) - 8 * c) % p
        X = X3
        # The column's point, inline _comb_point: entry m & 127, or m ^ 127 negated.
        m = cols[i]
        e = m & _COMB_LOW if m & _COMB_TOP else m ^ _COMB_LOW
        blob = table[e >> _CHUNK_SHIFT]
        o = (e & _CHUNK_MASK) * _ENTRY_BYTES
        x2 = from_bytes(blob[o : o + _COORD_BYTES], "big")
        y2 = from_bytes(blob[o + _COORD_BYTES : o + _ENTRY_BYTES], "big")
        if not m & _COMB_TOP:
            y2 = p - y2
        # Mixed addition madd-2004-hmv, 8M + 3S.
        # Plain % p: folding with 2^256 = 2^32 + 977 measured within 5% under MicroPython
        # (interpreter overhead dominates), not worth the extra bounds reasoning.
        z1z1 = Z * Z % p
        h = (x2 * z1z1 - X) % p
        r = (y2 * Z * z1z1 - Y) % p
        if h == 0:
            # acc = +-T: column 0 only (see above), so this is the final sum.
            return double((X, Y, Z)) if r == 0 else None
        hh = h * h % p
        hhh = hh * h % p
        v = X * hh % p
        X3 = (r * r - hhh - v - v) % p
        Y = (r * (v - X3) - Y * hhh) % p
        Z = Z * h % p
        X = X3
    return X, Y, Z


def mul(k, x, y):
    """Return k*(x, y) as a Jacobian point (None when k = 0 mod N); (x, y) must be on the curve."""
    k %= N
    if k == 0:
        return None
    negated, digits = _recode(k)
    if negated:
        y = P - y
    # Multiples 1..8 of the point, Jacobian; digit d selects multiples[|d| - 1], negated if d < 0.
    multiples = [(x, y, 1), double((x, y, 1))]
    for _ in range(_DIGIT_MAX - 2):
        multiples.append(add(multiples[-1], (x, y, 1)))
    acc = None
    for w in range(_WINDOWS - 1, -1, -1):
        for _ in range(_WINDOW_BITS):
            acc = double(acc)
        d = digits[w] - _DIGIT_BIAS
        if d > 0:
            acc = add(acc, multiples[d - 1])
        elif d < 0:
            X, Y, Z = multiples[-d - 1]
            acc = add(acc, (X, P - Y, Z))
    return acc

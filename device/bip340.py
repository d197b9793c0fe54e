"""BIP-340 Schnorr signatures over secp256k1, in pure Python that runs on MicroPython.

Sections cited are those of https://github.com/bitcoin/bips/blob/master/bip-0340.mediawiki.
Keys are 32-byte secrets and 32-byte x-only public keys; signatures are 64 bytes (r || s).
Use device.schnorr rather than this module: it picks libsecp256k1 (coincurve) when present.
"""

import hashlib
import os

from device import secp256k1

try:
    from micropython import const
except ImportError:  # CPython: const() only marks compile-time constants on MicroPython.

    def const(x):
        return x


_N = secp256k1.N
_P = secp256k1.P

SECRET_BYTES = const(32)
PUBKEY_BYTES = const(32)
AUX_BYTES = const(32)
SIGNATURE_BYTES = const(64)
_HALF = const(32)  # r is sig[0:32], s is sig[32:64]

# "Design", tagged hashes: one tag per use so hashes of one kind never collide with another's.
TAG_AUX = b"BIP0340/aux"
TAG_NONCE = b"BIP0340/nonce"
TAG_CHALLENGE = b"BIP0340/challenge"

# tag -> SHA256(tag) || SHA256(tag); holds the three tags above and the first few callers use.
_tag_prefixes = {}  # type: dict[bytes, bytes]
_TAG_CACHE_MAX = const(16)

# The last key used: (secret bytes, d with even-y public key, x-only public key). A sensor
# signs thousands of readings with one key; this saves one k*G and one inversion per signature.
_last_key = None


def _tagged_hasher(tag):
    """Return a SHA-256 object already fed with SHA256(tag) || SHA256(tag)."""
    prefix = _tag_prefixes.get(tag)
    if prefix is None:
        digest = hashlib.sha256(tag).digest()
        prefix = digest + digest
        if len(_tag_prefixes) < _TAG_CACHE_MAX:
            _tag_prefixes[tag] = prefix
    return hashlib.sha256(prefix)


def tagged_hash(tag, data):
    """Return SHA256(SHA256(tag) || SHA256(tag) || data), 32 bytes; tag is str (UTF-8) or bytes."""
    if isinstance(tag, str):
        tag = tag.encode()
    h = _tagged_hasher(tag)
    h.update(data)
    return h.digest()


def secret_scalar(secret32):
    """Return the secret key as an int. Raises ValueError unless it is 32 bytes and 1 <= d < n."""
    if len(secret32) != SECRET_BYTES:
        raise ValueError("secret key length: got %d bytes, want %d" % (len(secret32), SECRET_BYTES))
    d = int.from_bytes(secret32, "big")
    if d == 0 or d >= _N:
        # Never echo the secret itself.
        got = "0" if d == 0 else "a value >= n"
        raise ValueError("secret key value: got %s, want 1 <= d <= n-1" % got)
    return d


def _keypair(secret32):
    """Return (d, x-only public key) for a secret, d negated if needed so that d*G has even y."""
    global _last_key
    last = _last_key
    if last is not None and last[0] == secret32:
        return last[1], last[2]
    d = secret_scalar(secret32)
    # "Default Signing" steps 1-3: P = d'*G; d = d' if has_even_y(P) else n - d'.
    x, y = secp256k1.to_affine(secp256k1.mul_g(d))
    if y & 1:
        d = _N - d
    pk = x.to_bytes(PUBKEY_BYTES, "big")
    _last_key = (bytes(secret32), d, pk)
    return d, pk


def aux_bytes(aux32):
    """Return aux32, or 32 fresh bytes from os.urandom when None. Raises ValueError if not 32."""
    if aux32 is None:
        return os.urandom(AUX_BYTES)
    if len(aux32) != AUX_BYTES:
        raise ValueError("aux_rand length: got %d bytes, want %d" % (len(aux32), AUX_BYTES))
    return aux32


def pubkey(secret32):
    """Return the 32-byte x-only public key of a secret. Raises ValueError as secret_scalar."""
    return _keypair(secret32)[1]


def sign(secret32, msg, aux32=None):
    """Return the 64-byte signature of msg (bytes, any length) under secret32.

    aux32: 32 bytes of auxiliary randomness, or None to draw them from os.urandom.
    Raises ValueError for a secret not in [1, n-1] or a secret or aux32 of the wrong length.
    """
    d, pk = _keypair(secret32)
    aux32 = aux_bytes(aux32)
    # "Default Signing" steps 4-6: t = bytes(d) xor hash_aux(a); k' = hash_nonce(t || P || m).
    t = d ^ int.from_bytes(tagged_hash(TAG_AUX, aux32), "big")
    h = _tagged_hasher(TAG_NONCE)
    h.update(t.to_bytes(SECRET_BYTES, "big"))
    h.update(pk)
    h.update(msg)
    k = int.from_bytes(h.digest(), "big") % _N
    if k == 0:
        # Step 7 says fail; reaching it means SHA-256 output was 0 mod n (probability 2^-256).
        raise RuntimeError("BIP-340 nonce is zero")
    # Steps 8-9: R = k'*G; k = k' if has_even_y(R) else n - k'.
    rx, ry = secp256k1.to_affine(secp256k1.mul_g(k))
    if ry & 1:
        k = _N - k
    r = rx.to_bytes(_HALF, "big")
    # Steps 10-11: e = hash_challenge(bytes(R) || P || m) mod n; sig = bytes(R) || bytes(k + e*d).
    h = _tagged_hasher(TAG_CHALLENGE)
    h.update(r)
    h.update(pk)
    h.update(msg)
    e = int.from_bytes(h.digest(), "big") % _N
    return r + ((k + e * d) % _N).to_bytes(_HALF, "big")


def verify(xonly32, msg, sig64):
    """Return True iff sig64 is a valid signature of msg under the x-only public key xonly32.

    Returns False, never raises, for malformed input: wrong lengths or types, a key that is not
    the x of a curve point, r >= p or s >= n.
    """
    try:
        if len(xonly32) != PUBKEY_BYTES or len(sig64) != SIGNATURE_BYTES:
            return False
        x = int.from_bytes(xonly32, "big")
        r = int.from_bytes(sig64[:_HALF], "big")
        s = int.from_bytes(sig64[_HALF:], "big")
        # "Verification", steps 1-3: P = lift_x(int(pk)); fail if r >= p or s >= n.
        if r >= _P or s >= _N:
            return False
        y = secp256k1.lift_x(x)
        if y is None:
            return False
        # Step 4: e = int(hash_challenge(bytes(r) || bytes(P) || m)) mod n.
        h = _tagged_hasher(TAG_CHALLENGE)
        h.update(sig64[:_HALF])
        h.update(xonly32)
        h.update(msg)
    except TypeError:
        return False
    e = int.from_bytes(h.digest(), "big") % _N
    # Steps 5-8: R = s*G - e*P; fail if R is infinite, has odd y, or x(R) != r.
    R = secp256k1.to_affine(secp256k1.add(secp256k1.mul_g(s), secp256k1.mul(_N - e, x, y)))
    return R is not None and R[1] & 1 == 0 and R[0] == r

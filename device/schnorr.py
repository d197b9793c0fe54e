"""BIP-340 Schnorr signatures for the whole project: import this module, not a backend.

    pubkey(secret32) -> x-only public key (32 bytes)
    sign(secret32, msg, aux32=None) -> signature (64 bytes); aux32 None draws os.urandom(32)
    verify(xonly32, msg, sig64) -> bool, False for any malformed input
    tagged_hash(tag, data) -> 32 bytes

BACKEND is "coincurve" on CPython with coincurve (libsecp256k1), else "pure" (device.bip340,
which is what runs on MicroPython). Both give the same bytes for the same inputs.
"""

from device import bip340

tagged_hash = bip340.tagged_hash

try:
    import coincurve
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib
    from coincurve.context import GLOBAL_CONTEXT as _CONTEXT
except ImportError:  # MicroPython, or CPython without coincurve
    coincurve = None  # type: ignore[assignment]

if coincurve is None:
    BACKEND = "pure"
    pubkey = bip340.pubkey
    sign = bip340.sign
    verify = bip340.verify
else:
    BACKEND = "coincurve"
    # libsecp256k1 include/secp256k1_schnorrsig.h, SECP256K1_SCHNORRSIG_EXTRAPARAMS_MAGIC.
    _EXTRAPARAMS_MAGIC = [0xDA, 0x6F, 0xB3, 0x8C]
    _BYTES_TYPES = (bytes, bytearray, memoryview)

    # The last key used: (secret bytes, secp256k1_keypair, x-only public key), as in bip340.
    _last_key = None

    def _coincurve_keypair(secret32):
        """Return (keypair, x-only public key) for a secret. Raises ValueError as bip340 does."""
        global _last_key
        last = _last_key
        if last is not None and last[0] == secret32:
            return last[1], last[2]
        bip340.secret_scalar(secret32)  # the same checks and messages as the pure backend
        secret = bytes(secret32)
        keypair = _ffi.new("secp256k1_keypair *")
        if not _lib.secp256k1_keypair_create(_CONTEXT.ctx, keypair, secret):
            raise ValueError("secret key rejected by libsecp256k1")
        xonly = _ffi.new("secp256k1_xonly_pubkey *")
        _lib.secp256k1_keypair_xonly_pub(_CONTEXT.ctx, xonly, _ffi.NULL, keypair)
        out = _ffi.new("unsigned char[32]")
        _lib.secp256k1_xonly_pubkey_serialize(_CONTEXT.ctx, out, xonly)
        pk = bytes(_ffi.buffer(out))
        _last_key = (secret, keypair, pk)
        return keypair, pk

    def coincurve_pubkey(secret32):
        """Return the x-only public key of a secret. Raises ValueError as bip340.pubkey."""
        return _coincurve_keypair(secret32)[1]

    def coincurve_sign(secret32, msg, aux32=None):
        """Sign msg (bytes, any length) via libsecp256k1. Raises as bip340.sign does."""
        keypair, _ = _coincurve_keypair(secret32)
        aux = bytes(bip340.aux_bytes(aux32))
        if not isinstance(msg, _BYTES_TYPES):
            raise TypeError("message: got %s, want bytes" % type(msg).__name__)
        # schnorrsig_sign_custom rather than coincurve's sign_schnorr: it takes messages of any
        # length (BIP-340 allows them; sign_schnorr wants 32 bytes) and reuses the cached
        # keypair. noncefp NULL selects the BIP-340 default nonce function with ndata = aux.
        aux_buf = _ffi.new("unsigned char[32]", aux)
        params = _ffi.new(
            "secp256k1_schnorrsig_extraparams *",
            {"magic": _EXTRAPARAMS_MAGIC, "noncefp": _ffi.NULL, "ndata": aux_buf},
        )
        sig = _ffi.new("unsigned char[64]")
        data = bytes(msg)
        if not _lib.secp256k1_schnorrsig_sign_custom(
            _CONTEXT.ctx, sig, data, len(data), keypair, params
        ):
            raise RuntimeError("libsecp256k1 schnorrsig_sign_custom failed")
        return bytes(_ffi.buffer(sig))

    def coincurve_verify(xonly32, msg, sig64):
        """Return True iff sig64 is valid for msg under xonly32; False for malformed input."""
        if not (
            isinstance(xonly32, _BYTES_TYPES)
            and isinstance(msg, _BYTES_TYPES)
            and isinstance(sig64, _BYTES_TYPES)
        ):
            return False
        # libsecp256k1 reads exactly 64 signature bytes: check lengths before handing it a buffer.
        if len(xonly32) != bip340.PUBKEY_BYTES or len(sig64) != bip340.SIGNATURE_BYTES:
            return False
        try:
            key = coincurve.PublicKeyXOnly(bytes(xonly32))
        except ValueError:  # x >= p, or not the x of a curve point
            return False
        return key.verify(bytes(sig64), bytes(msg))

    pubkey = coincurve_pubkey
    sign = coincurve_sign
    verify = coincurve_verify

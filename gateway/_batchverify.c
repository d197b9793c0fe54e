/* Many readings' BIP-340 checks in one call, without the GIL (see gateway/batchverify.py).
 *
 * The gateway checks signatures on a pool of threads (gateway/verify_pool.py). Through
 * coincurve each check is one cffi call that releases the GIL and takes it back, and while
 * the event loop holds the GIL in long stretches (judging a group, a commit's bookkeeping)
 * a thread that has finished a check waits for it before starting the next: with two
 * threads the process used ~1.5 of 2 cores (bench/RESULTS.md, issue 13). Here a thread
 * takes the GIL once per chunk of readings.
 *
 * libsecp256k1 is the copy coincurve ships: gateway/batchverify.py passes its function
 * pointers and context to bind(), so no headers and no second library are needed. The
 * extension is optional (setup.py): without a C compiler the gateway makes one coincurve
 * call per reading, as before, with the same verdicts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define WIRE_SIZE 110 /* device/reading.py: version, key, seq, time, values, flags, sig */
#define BODY_SIZE 46  /* the signed body: everything before the signature */

typedef int (*verify_fn)(const void *ctx, const unsigned char *sig64, const unsigned char *msg,
                         size_t msglen, const void *xonly_pubkey);
typedef int (*tagged_sha256_fn)(const void *ctx, unsigned char *hash32, const unsigned char *tag,
                                size_t taglen, const unsigned char *msg, size_t msglen);

static verify_fn schnorrsig_verify = NULL;
static tagged_sha256_fn tagged_sha256 = NULL;
static const void *context = NULL;

static PyObject *bind(PyObject *self, PyObject *args) {
    unsigned long long verify, sha, ctx;
    if (!PyArg_ParseTuple(args, "KKK:bind", &verify, &sha, &ctx))
        return NULL;
    if (!verify || !sha || !ctx) {
        PyErr_SetString(PyExc_ValueError, "bind: a null function or context");
        return NULL;
    }
    schnorrsig_verify = (verify_fn)(uintptr_t)verify;
    tagged_sha256 = (tagged_sha256_fn)(uintptr_t)sha;
    context = (const void *)(uintptr_t)ctx;
    Py_RETURN_NONE;
}

/* check(tag, wires, keys) -> bytes: wires is n readings of WIRE_SIZE bytes back to back;
 * keys holds n native pointers (array 'Q' or 'L') to each reading's parsed x-only key, 0
 * for a key that is not a curve point. Returns n bytes, 1 where the signature is valid. */
static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer tag, wires, keys;
    if (!PyArg_ParseTuple(args, "y*y*y*:check", &tag, &wires, &keys))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t n = wires.len / WIRE_SIZE;
    if (schnorrsig_verify == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "check: bind() was not called");
    } else if (wires.len % WIRE_SIZE != 0) {
        PyErr_Format(PyExc_ValueError, "check: wires: got %zd bytes, want a multiple of %d",
                     wires.len, WIRE_SIZE);
    } else if (keys.len != n * (Py_ssize_t)sizeof(uintptr_t)) {
        PyErr_Format(PyExc_ValueError, "check: keys: got %zd bytes, want %zd pointers",
                     keys.len, n);
    } else if ((out = PyBytes_FromStringAndSize(NULL, n)) != NULL) {
        unsigned char *valid = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *wire = (const unsigned char *)wires.buf;
        const unsigned char *tag_bytes = (const unsigned char *)tag.buf;
        size_t tag_len = (size_t)tag.len;
        const uintptr_t *key = (const uintptr_t *)keys.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++, wire += WIRE_SIZE) {
            unsigned char message[32];
            valid[i] = 0;
            if (key[i] == 0)
                continue; /* not a point: no signature verifies */
            if (!tagged_sha256(context, message, tag_bytes, tag_len, wire, BODY_SIZE))
                continue;
            valid[i] = schnorrsig_verify(context, wire + BODY_SIZE, message, sizeof message,
                                         (const void *)key[i]) == 1;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&tag);
    PyBuffer_Release(&wires);
    PyBuffer_Release(&keys);
    return out;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind(verify, tagged_sha256, context): libsecp256k1's."},
    {"check", check, METH_VARARGS, "check(tag, wires, keys) -> bytes of 1 (valid) or 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batchverify",
    "BIP-340 checks of many readings in one call, without the GIL.", -1, methods,
};

PyMODINIT_FUNC PyInit__batchverify(void) { return PyModule_Create(&module); }

"""A ledger made of the real pieces, and the cloud's public log API served over it.

`Ledger` signs readings (device.reading), seals them into chained batches (gateway.batch),
appends batch entries to an RFC 6962 log (cloud.log.tlog, gateway.merkle) and signs C2SP
checkpoints (gateway.checkpoint): exactly the bytes the cloud produces. `LogApi` serves it
with the routes and shapes of the cloud's API, and lets a test make the server lie
(another size, other entries, another key), which the real cloud app never does: the
follower's alarms need a dishonest server. The follower against the real app is tested in
test_tampering.py (an honest log, then one edited behind the app's back).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from cloud.log import tlog
from device import reading, schnorr
from gateway import batch, config_entry, merkle
from gateway import registry_change as registry
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.note import Signer

ORIGIN = "ledger.test/log"
T0 = 1_793_620_800  # 2026-11-02 12:00:00 UTC


def secret(label: str) -> bytes:
    """A fixed secret key for tests: SHA-256 of 'pharmasync test <label>'."""
    return hashlib.sha256(b"pharmasync test " + label.encode()).digest()


GATEWAY = secret("gateway")
OTHER_GATEWAY = secret("gateway 2")
BOX = secret("box")
OWNER = secret("owner")
LOG_SIGNER = Signer(ORIGIN, secret("log key"))


@dataclass
class Ledger:
    """Batches of signed readings in a signed RFC 6962 log, as the cloud keeps them."""

    signer: Signer = LOG_SIGNER
    origin: str = ORIGIN
    entries: list[bytes] = field(default_factory=list)
    readings: list[list[bytes]] = field(default_factory=list)  # per entry, leaf order
    heads: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)  # gateway -> seq, hash
    box_seq: dict[bytes, int] = field(default_factory=dict)

    @property
    def vkey(self) -> str:
        return self.signer.verifier().to_vkey()

    def sign_readings(self, box: bytes = BOX, count: int = 3) -> list[bytes]:
        """Return `count` new readings of `box`, one a minute, between 4.50 and 5.49 C."""
        start = self.box_seq.get(box, 0)
        self.box_seq[box] = start + count
        return [
            reading.sign(box, s, T0 + 60 * s, 450 + s % 100, 5000 + s % 100, aux=bytes(32))
            for s in range(start, start + count)
        ]

    def seal(self, gateway: bytes, wires: list[bytes]) -> batch.BatchHeader:
        """Seal `wires` as the gateway's next batch (chained), without appending it."""
        seq, prev = self.heads.get(schnorr.pubkey(gateway), (-1, batch.GENESIS_PREV))
        return batch.seal(gateway, seq + 1, prev, wires, aux=bytes(32))

    def append(self, header: batch.BatchHeader, wires: list[bytes]) -> int:
        """Append a sealed batch's entry; return its log index."""
        self.entries.append(tlog.batch_entry(header.encode()))
        self.readings.append(list(wires))
        self.heads[header.gateway_key] = (header.seq, header.hash())
        return len(self.entries) - 1

    def add_batch(self, gateway: bytes = GATEWAY, box: bytes = BOX, count: int = 3) -> int:
        """Sign `count` readings, seal them as the gateway's next batch, append it."""
        wires = self.sign_readings(box, count)
        return self.append(self.seal(gateway, wires), wires)

    def register(self, change: registry.Change, owner: bytes = OWNER) -> int:
        """Append the owner's signed registry change, as the cloud logs it; return its index."""
        request = registry.sign_request(owner, change)
        _, entry = registry.open_request(request, None, now=change.time)
        self.entries.append(entry)
        self.readings.append([])
        return len(self.entries) - 1

    def bootstrap(self, owners: tuple[bytes, ...] = (OWNER,)) -> int:
        """Append the owners' bootstrap (secret keys given), as `cloud serve` writes it."""
        keys = [schnorr.pubkey(o) for o in owners]
        self.entries.append(config_entry.bootstrap_entry(keys, T0))
        self.readings.append([])
        return len(self.entries) - 1

    def change_owner(self, op: str, key: bytes, signer: bytes = OWNER, time: int = T0) -> int:
        """Append an owner change (op config_entry.ADD or REMOVE of the x-only `key`) signed
        by the secret `signer`, unchecked (a lying log may log anything); return its index."""
        request = config_entry.sign_request(signer, config_entry.ConfigChange(op, time, key=key))
        _, entry = config_entry.open_request(request, now=time)
        self.entries.append(entry)
        self.readings.append([])
        return len(self.entries) - 1

    def tree(self, size: int | None = None) -> merkle.MerkleTree:
        return merkle.MerkleTree(self.entries[:size])

    def checkpoint(self, size: int | None = None, signer: Signer | None = None) -> str:
        """Return the signed checkpoint note of the first `size` entries (default all)."""
        size = len(self.entries) if size is None else size
        cp = Checkpoint(self.origin, size, self.tree(size).root())
        return sign_checkpoint(cp, signer or self.signer)

    def bundle(self, index: int, leaf: int, size: int | None = None) -> dict:
        """Return the proof bundle of reading `leaf` of batch entry `index` (API shape)."""
        size = len(self.entries) if size is None else size
        wires = self.readings[index]
        _, header = tlog.parse_entry(self.entries[index])
        return {
            "reading": wires[leaf].hex(),
            "batch": {
                "header": header.hex(),
                "index": leaf,
                "size": len(wires),
                "proof": [h.hex() for h in merkle.inclusion_proof(wires, leaf)],
            },
            "log": {
                "entry": self.entries[index].hex(),
                "index": index,
                "size": size,
                "proof": [h.hex() for h in self.tree(size).inclusion_proof(index)],
            },
            "checkpoint": self.checkpoint(size),
            "log_vkey": self.vkey,
        }

    def copy(self) -> Ledger:
        return Ledger(
            self.signer,
            self.origin,
            list(self.entries),
            [list(r) for r in self.readings],
            dict(self.heads),
            dict(self.box_seq),
        )


def build(batches: int = 7) -> Ledger:
    """A ledger of batches of 1 to 4 readings, alternating between two gateways (entries
    0, 2, 4, ... are GATEWAY's)."""
    ledger = Ledger()
    for i in range(batches):
        ledger.add_batch((GATEWAY, OTHER_GATEWAY)[i % 2], BOX, 1 + i % 4)
    return ledger


@dataclass
class LogApi:
    """What the server serves: a ledger, and the lies a test asks for."""

    ledger: Ledger
    url: str = ""  # where the test server listens, once started
    size: int | None = None  # serve a checkpoint of this size (default: all entries)
    page_limit: int = 1000
    vkey: str | None = None  # serve this key line instead of the ledger's
    note: str | None = None  # serve this checkpoint note instead
    entries: dict[int, bytes] = field(default_factory=dict)  # serve these entries instead
    readings: dict[int, bytes] = field(default_factory=dict)  # serve these readings instead
    failures: int = 0  # answer this many next requests with 503
    requests: list[str] = field(default_factory=list)

    def served_size(self) -> int:
        return len(self.ledger.entries) if self.size is None else self.size


API = web.AppKey("api", LogApi)


def _problem(status: int, reason: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": reason, "detail": detail, "reason": reason},
        status=status,
        content_type="application/problem+json",
    )


@web.middleware
async def _flaky(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = request.app[API]
    api.requests.append(request.path_qs)
    if api.failures:
        api.failures -= 1
        return _problem(503, "unavailable", "try again")
    return await handler(request)


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.query[name])
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text=f"{name}: want an integer") from None


async def _checkpoint(request: web.Request) -> web.Response:
    api = request.app[API]
    return web.Response(text=api.note or api.ledger.checkpoint(api.served_size()))


async def _vkey(request: web.Request) -> web.Response:
    api = request.app[API]
    return web.Response(text=(api.vkey or api.ledger.vkey) + "\n")


async def _entries(request: web.Request) -> web.Response:
    api = request.app[API]
    start, end = _int(request, "start"), _int(request, "end")
    end = min(end, api.served_size(), start + api.page_limit)
    if not 0 <= start < end:
        return _problem(400, "range", f"start {start} end {end}")
    served = [api.entries.get(i, api.ledger.entries[i]).hex() for i in range(start, end)]
    return web.json_response({"start": start, "entries": served})


async def _readings(request: web.Request) -> web.Response:
    api = request.app[API]
    index = int(request.match_info["index"])
    if not 0 <= index < len(api.ledger.entries):
        return _problem(404, "not found", f"entry {index}")
    if not api.ledger.readings[index] and index not in api.readings:
        return _problem(404, "not a batch", f"entry {index} is not a batch entry")
    body = api.readings.get(index, b"".join(api.ledger.readings[index]))
    return web.Response(body=body, content_type="application/octet-stream")


async def _consistency(request: web.Request) -> web.Response:
    api = request.app[API]
    old, new = _int(request, "old"), _int(request, "new")
    proof = api.ledger.tree(new).consistency_proof(old)
    return web.json_response({"old": old, "new": new, "proof": [h.hex() for h in proof]})


async def _inclusion(request: web.Request) -> web.Response:
    api = request.app[API]
    index, size = _int(request, "index"), _int(request, "size")
    tree = api.ledger.tree(size)
    return web.json_response(
        {
            "index": index,
            "size": size,
            "leaf_hash": tree.leaf_hash(index).hex(),
            "proof": [h.hex() for h in tree.inclusion_proof(index)],
        }
    )


async def _reading_proof(request: web.Request) -> web.Response:
    api = request.app[API]
    key = bytes.fromhex(request.match_info["key"])
    seq = int(request.match_info["seq"])
    for index, wires in enumerate(api.ledger.readings):
        for leaf, wire in enumerate(wires):
            if wire[1:33] == key and reading.seq_of(wire) == seq:
                return web.json_response(api.ledger.bundle(index, leaf, api.served_size()))
    return _problem(404, "not found", f"no reading {seq} of box {key.hex()}")


def make_app(api: LogApi) -> web.Application:
    """Return the aiohttp app serving the public log API over `api`."""
    app = web.Application(middlewares=[_flaky])
    app[API] = api
    app.router.add_get("/v1/checkpoint", _checkpoint)
    app.router.add_get("/v1/log/vkey", _vkey)
    app.router.add_get("/v1/log/entries", _entries)
    app.router.add_get("/v1/log/entries/{index}/readings", _readings)
    app.router.add_get("/v1/log/proof/consistency", _consistency)
    app.router.add_get("/v1/log/proof/inclusion", _inclusion)
    app.router.add_get("/v1/readings/{key}/{seq}/proof", _reading_proof)
    return app


def box_key(box: bytes = BOX) -> bytes:
    return schnorr.pubkey(box)

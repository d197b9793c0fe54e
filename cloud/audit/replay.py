"""`pharmasync verify --replay --cloud URL [--key FILE]`: replay the contracts from the log
(docs/contracts.md §3, replay grants) and check every committed state root.

With a key holding a replay grant: sign in (POST /v1/auth/challenge, /v1/auth/token), fetch
the log's entries up to the latest 0x04 state root and the stored bodies (GET /v1/tx), then
in log order, as the ledger follows its log (cloud/services/contract_follow.py):

    0x06  fold the configuration entries (the regulators come from the log,
          gateway/config_entry.py)
    0x02  a box registration names the box's owner key (State.boxes); its signature checked
    0x03  check the commitment against its body and salt, verify the body's signature again,
          apply it with the ledger's own engine (cloud/contracts/catalog.py)
    0x01  fetch the batch's readings (GET /v1/log/entries/{i}/readings), check them against
          the header the log holds (count, times, Merkle root), keep those that store a
          (box, seq) for the first time, verify the signatures of those of boxes on lots and
          apply them to the lots' cold chains (lots_coldchain.ColdChains); a batch that
          changed the state must be followed by its 0x04, one that did not must not be
    0x04  end the block of transactions before it (ColdChains.after_transactions), check
          that it covers the last entry that changed the state and that its root and record
          count equal the state rebuilt

The first entry where log and replay part is reported. Without a key (or a grant) only the
public entries are checked (each 0x03 and 0x04 parses, each root covers the 0x03 or batch
before it) and no readings are fetched, and the report says so. The log's own consistency
and signatures are `verify --cloud`'s. A full replay fetches every batch's readings, one
request per batch, and keeps each (box, seq) it has seen: the first carrier of a reading is
the one the ledger stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from cloud.audit.log_client import FetchError, LogClient
from cloud.contracts import (
    auth,
    catalog,
    didkey,
    entries,
    lots_boxes,
    lots_coldchain,
    stateroot,
    tx,
)
from cloud.contracts.engine import Applied, ContractError, State
from cloud.contracts.lots_coldchain import ColdChains
from cloud.log import tlog
from device import reading, schnorr
from gateway import batch, config_entry, registry_change
from gateway.refusal import Refused

EXIT_OK = 0  # as `pharmasync verify`: 0 verified, 1 unreadable, 3 a check failed
EXIT_FETCH = 1
EXIT_PARTED = 3
PAGE = 1000


@dataclass(frozen=True)
class Report:
    """What a replay checked: entries read, transactions replayed (None: bodies not
    fetched, public entries only), roots checked, and where log and replay parted."""

    entries: int
    replayed: int | None
    roots: int
    parted_at: int | None = None
    reason: str = ""

    def render(self) -> str:
        if self.parted_at is not None:
            return f"PARTED at entry {self.parted_at}: {self.reason}"
        if self.replayed is None:
            return (
                f"public entries only ({self.reason}): {self.entries} entries, "
                f"{self.roots} state roots well-formed; bodies not replayed"
            )
        return (
            f"ok: {self.entries} entries, {self.replayed} transactions replayed, "
            f"{self.roots} state roots match"
        )


class _Parted(Exception):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index, self.reason = index, reason


async def _json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers, params=params) as r:
        return r.status, await r.json(content_type=None)


async def sign_in(session: aiohttp.ClientSession, url: str, secret: bytes) -> tuple[str, str]:
    """Return a bearer token for the did:key of `secret` and "", or "" and why the ledger
    refused it (403: no participant, regulator or grant). Raises FetchError."""
    did = didkey.from_secret(secret)
    status, answer = await _json(session, "POST", f"{url}/v1/auth/challenge")
    if status != 201:
        raise FetchError(f"POST /v1/auth/challenge: HTTP {status} {answer}")
    challenge = bytes.fromhex(answer["challenge"])
    sig = schnorr.sign(secret, auth.digest(challenge, did))
    body = {"did": did, "challenge": challenge.hex(), "sig": sig.hex()}
    status, answer = await _json(session, "POST", f"{url}/v1/auth/token", body)
    if status == 403:
        return "", str(answer.get("detail", answer))
    if status != 201:
        raise FetchError(f"POST /v1/auth/token: HTTP {status} {answer.get('detail', answer)}")
    return str(answer["token"]), ""


async def _bodies(
    session: aiohttp.ClientSession, url: str, token: str
) -> tuple[dict[int, dict[str, Any]] | None, str]:
    """The stored bodies by 0x03 index, or (None, why) when refused (no grant)."""
    headers = {"Authorization": f"Bearer {token}"}
    found: dict[int, dict[str, Any]] = {}
    after = -1
    while True:
        params = {"limit": str(PAGE)} | ({"after": str(after)} if after >= 0 else {})
        status, page = await _json(session, "GET", f"{url}/v1/tx", None, headers, params)
        if status in (401, 403):
            return None, str(page.get("detail", page))
        if status != 200:
            raise FetchError(f"GET /v1/tx: HTTP {status} {page.get('detail', page)}")
        for row in page["transactions"]:
            found[int(row["index"])] = row
        if not page["transactions"]:
            return found, ""
        after = int(page["next"])


async def replay(url: str, secret: bytes | None, session: aiohttp.ClientSession) -> Report:
    """Replay the ledger at `url` (module docstring). Raises FetchError."""
    url = url.rstrip("/")
    status, head = await _json(session, "GET", f"{url}/v1/state")
    if status != 200:
        raise FetchError(f"GET /v1/state: HTTP {status}")
    end = 0 if head["index"] is None else int(head["index"]) + 1
    log: list[bytes] = []
    client = LogClient(session, url)
    while len(log) < end:
        log += await client.entries(len(log), end)
    bodies: dict[int, dict[str, Any]] | None = None
    why = "no --key given"
    if secret is not None:
        token, why = await sign_in(session, url, secret)
        if token:
            bodies, why = await _bodies(session, url, token)
    replayed = _Replay(bodies, client)
    try:
        for index, entry in enumerate(log):
            await replayed.entry(index, entry)
        return replayed.report(len(log), why)
    except _Parted as e:
        return Report(end, None if bodies is None else replayed.replayed, 0, e.index, e.reason)


class _Replay:
    """The state rebuilt from the log, entry by entry (module docstring); `_Parted` at the
    first entry where log and replay part."""

    def __init__(self, bodies: dict[int, dict[str, Any]] | None, client: LogClient) -> None:
        self.bodies, self.client = bodies, client
        self.engine = catalog.engine()
        self.authority = config_entry.Authority()
        self.state: State | None = None  # from the first transaction: the log's regulators
        self.boxes: dict[bytes, bytes] = {}  # box registrations before it
        self.chains = ColdChains()
        self.block: list[Applied] = []  # transactions since the last 0x04
        self.last_tx: int | None = None  # the last 0x03
        self.last_batch: int | None = None  # the last batch (0x01)
        self.covers: int | None = None  # the last entry that changed the state
        self.unrooted: int | None = None  # a batch that changed it, its 0x04 still due
        self.seen: dict[bytes, set[int]] = {}  # (box, seq) of the readings stored so far
        self.replayed = self.roots = 0

    async def entry(self, index: int, entry: bytes) -> None:
        kind = entry[0]
        if self.unrooted is not None and kind in (entries.KIND, tlog.ENTRY_BATCH):
            raise _Parted(self.unrooted, "the batch changed the state but no 0x04 follows it")
        if kind == config_entry.ENTRY_CONFIG:
            try:
                self.authority = config_entry.next_authority(self.authority, entry)
            except Refused as e:
                raise _Parted(index, f"configuration entry: {e}") from None
            if self.state is not None:  # a handover: the regulators from here on
                self.state.set_regulators(self.authority.regulators)
        elif kind == registry_change.ENTRY_REGISTRY and self.bodies is not None:
            self._box(index, entry)
        elif kind == entries.KIND:
            self._transaction(index, entry)
        elif kind == tlog.ENTRY_BATCH:
            self.last_batch = index
            if self.bodies is not None:
                await self._batch(index, entry)
        elif kind == stateroot.KIND:
            self._root(index, entry)

    def _state(self) -> State:
        if self.state is None:
            self.state = State(self.authority.regulators)
            self.state.boxes.update(self.boxes)
        return self.state

    def _box(self, index: int, entry: bytes) -> None:
        try:
            box = lots_boxes.registered_box(entry)
        except Refused as e:
            raise _Parted(index, f"registry entry: {e}") from None
        if box is not None:
            (self.boxes if self.state is None else self.state.boxes)[box[0]] = box[1]

    def _transaction(self, index: int, entry: bytes) -> None:
        try:
            committed = entries.parse(entry)
        except Refused as e:
            raise _Parted(index, f"0x03 entry: {e}") from None
        self.last_tx = self.covers = index
        if self.bodies is None:
            return
        row = self.bodies.get(index)
        if row is None:
            raise _Parted(index, "the ledger served no body for this 0x03 entry")
        try:
            signed = tx.from_record(row["canonical"].encode(), bytes.fromhex(row["sig"]))
            entries.verify(committed, bytes.fromhex(row["salt"]), signed)
            state = self._state()
            self.block.append(
                self.engine.apply(state, signed, bytes.fromhex(row["salt"]), root=False)
            )
        except (Refused, ValueError, ContractError) as e:
            raise _Parted(index, f"transaction body: {e}") from None
        self.replayed += 1

    async def _batch(self, index: int, entry: bytes) -> None:
        if self.block:
            raise _Parted(index, "transactions before it have no 0x04 yet")
        try:
            header = batch.decode(entry[1:])
            raw = await self.client.batch_readings(index)
            wires = [raw[i : i + reading.SIZE] for i in range(0, len(raw), reading.SIZE)]
            batch.check_contents(header, wires)
        except (batch.BatchError, reading.ReadingError) as e:
            raise _Parted(index, f"batch readings: {e}") from None
        fed = []
        for position, wire in enumerate(wires):
            r = reading.decode(wire)
            seqs = self.seen.setdefault(bytes(r.key), set())
            if r.seq in seqs:
                continue  # a duplicate sighting or an equivocation: not the stored reading
            seqs.add(r.seq)
            if r.key in self.chains.attached:
                if not schnorr.verify(r.key, reading.message(wire), r.signature):
                    raise _Parted(index, f"reading {position} (seq {r.seq}) does not verify")
                fed.append(lots_coldchain.box_reading(r))
        if fed and self.state is not None:
            applied = self.chains.apply_readings(self.state, fed, root=False)
            if applied.put or applied.deleted:
                self.covers = self.unrooted = index

    def _root(self, index: int, entry: bytes) -> None:
        try:
            root = stateroot.parse(entry)
        except stateroot.StateRootError as e:
            raise _Parted(index, f"0x04 entry: {e}") from None
        if self.bodies is None:  # public entries only: what the root may cover
            if root.covers not in (self.last_tx, self.last_batch):
                want = f"the 0x03 at {self.last_tx} or the batch at {self.last_batch}"
                raise _Parted(index, f"root covers {root.covers}, want {want}")
            self.roots += 1
            return
        if self.block:
            assert self.state is not None
            self.chains.after_transactions(self.state, self.block, root=False)
            self.block = []
        if root.covers != self.covers:
            raise _Parted(
                index,
                f"root covers {root.covers}, want {self.covers}, the last entry that "
                "changed the state",
            )
        self.unrooted = None
        self.roots += 1
        state = self.state
        if state is not None and (root.root, root.records) != (state.root, state.count):
            raise _Parted(
                index,
                f"logged root {root.root.hex()} ({root.records} records), replay "
                f"gives {state.root.hex()} ({state.count} records)",
            )

    def report(self, size: int, why: str) -> Report:
        if self.unrooted is not None:
            raise _Parted(self.unrooted, "the batch changed the state but no 0x04 follows it")
        return Report(size, None if self.bodies is None else self.replayed, self.roots, None, why)


async def run(url: str, secret: bytes | None) -> int:
    """Print the replay report of the ledger at `url`; return the exit status."""
    async with aiohttp.ClientSession() as session:
        try:
            report = await replay(url, secret, session)
        except (FetchError, aiohttp.ClientError, KeyError, ValueError, json.JSONDecodeError) as e:
            print(f"error: {url}: {e}")
            return EXIT_FETCH
    print(report.render())
    return EXIT_PARTED if report.parted_at is not None else EXIT_OK

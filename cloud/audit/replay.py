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

The bodies are fetched a page at a time while the entries before them are applied, and a
log of at least POOL_FROM transactions has its bodies parsed and their signatures verified
ahead of the apply loop, on a process of its own (the loop re-parses in line any body the
pool could not read, so a refusal says the same either way).

The first entry where log and replay part is reported. Without a key (or a grant) only the
public entries are checked (each 0x03 and 0x04 parses, each root covers the 0x03 or batch
before it) and no readings are fetched, and the report says so. The log's own consistency
and signatures are `verify --cloud`'s. A full replay fetches every batch's readings, one
request per batch, and keeps each (box, seq) it has seen: the first carrier of a reading is
the one the ledger stores.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
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
# Logs of at least this many transactions have their bodies parsed and verified ahead of the
# apply loop on a process pool (fewer: in line, a pool's start costs more than it saves),
# PARSE_CHUNK bodies per job.
POOL_FROM = 2000
PARSE_CHUNK = 250
Row = dict[str, Any]  # a body as GET /v1/tx serves it


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


async def _page(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], after: int
) -> tuple[int, Any]:
    params = {"limit": str(PAGE)} | ({"after": str(after)} if after >= 0 else {})
    return await _json(session, "GET", f"{url}/v1/tx", None, headers, params)


async def _bodies(
    session: aiohttp.ClientSession, url: str, token: str, pool: Executor | None
) -> tuple[_Bodies | None, str]:
    """The stored bodies by 0x03 index, their first page read and the others fetched in a
    task of their own (_Bodies), or (None, why) when the first page is refused (no
    grant)."""
    headers = {"Authorization": f"Bearer {token}"}
    status, page = await _page(session, url, headers, -1)
    if status in (401, 403):
        return None, str(page.get("detail", page))
    bodies = _Bodies(pool)
    bodies.start(bodies.fetch(session, url, headers, status, page))
    return bodies, ""


def _parse_rows(rows: list[tuple[int, object, object]]) -> list[tuple[int, tx.SignedTx | None]]:
    """On the pool: each body (index, canonical, sig hex) parsed and its signature verified
    as _Replay._transaction does it; None for one that fails (the loop parses that one
    again, in line, for its refusal)."""
    parsed: list[tuple[int, tx.SignedTx | None]] = []
    for index, canonical, sig in rows:
        if not isinstance(canonical, str) or not isinstance(sig, str):
            parsed.append((index, None))
            continue
        try:
            parsed.append((index, tx.from_record(canonical.encode(), bytes.fromhex(sig))))
        except Exception:  # any failure: the loop's own parse reports it
            parsed.append((index, None))
    return parsed


class _Bodies:
    """The stored bodies by 0x03 index as their pages arrive (`fetch`, a task), each page
    handed to `pool` (if any) to be parsed ahead of the loop, PARSE_CHUNK bodies a job."""

    def __init__(self, pool: Executor | None) -> None:
        self.rows: dict[int, Row] = {}
        self._pool = pool
        self._highest = -1  # the highest index fetched
        self._arrived = asyncio.Event()  # set after each page and when the fetch ends
        self._chunks: deque[asyncio.Future[list[tuple[int, tx.SignedTx | None]]]] = deque()
        self._parsed: dict[int, tx.SignedTx | None] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self, fetch: Any) -> None:
        self._task = asyncio.ensure_future(fetch)

    async def fetch(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        status: int,
        page: Any,
    ) -> None:
        """Keep the pages, from the first (already read), until an empty one. Raises
        FetchError for a page refused or failed (a later page refused too: the grant was
        checked by the first) or bodies out of log order (each page's, and the pages')."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if status != 200:
                    raise FetchError(f"GET /v1/tx: HTTP {status} {page.get('detail', page)}")
                found = page["transactions"]
                for row in found:
                    index = int(row["index"])
                    if index <= self._highest:  # the loop may have applied the index before
                        raise FetchError(f"GET /v1/tx: index {index} after {self._highest}")
                    self.rows[index] = row
                    self._highest = index
                if self._pool is not None:
                    rows = [(int(r["index"]), r.get("canonical"), r.get("sig")) for r in found]
                    for i in range(0, len(rows), PARSE_CHUNK):
                        chunk = rows[i : i + PARSE_CHUNK]
                        self._chunks.append(loop.run_in_executor(self._pool, _parse_rows, chunk))
                self._arrived.set()
                if not found:
                    return
                status, page = await _page(session, url, headers, int(page["next"]))
        finally:
            self._arrived.set()

    async def row(self, index: int) -> Row | None:
        """The body of the 0x03 at `index`, once the pages up to it have arrived (None: the
        ledger served none). Raises what the fetch raised."""
        assert self._task is not None
        while index > self._highest and not self._task.done():
            self._arrived.clear()
            await self._arrived.wait()
        if index not in self.rows and self._task.done():
            self._task.result()
        return self.rows.get(index)

    async def parsed(self, index: int) -> tx.SignedTx | None:
        """The pool's SignedTx of the body at `index`, None if it has none (no pool, or the
        pool could not read it): the caller parses it then."""
        while index not in self._parsed and self._chunks:
            try:
                self._parsed.update(await self._chunks.popleft())
            except Exception:  # a broken pool: the loop parses in line
                self._chunks.clear()
        return self._parsed.pop(index, None)

    async def finish(self) -> None:
        """Wait for the fetch to end; raise what it raised (as fetching every body before
        replaying did)."""
        assert self._task is not None
        try:
            await self._task
        finally:
            for chunk in self._chunks:
                chunk.cancel()

    def cancel(self) -> None:
        assert self._task is not None
        self._task.cancel()


def _pool(log: list[bytes]) -> Executor | None:
    """A process to parse bodies on, if the log holds POOL_FROM transactions or more and
    the machine more than one core (forked where it can be: no start-up imports)."""
    if (os.cpu_count() or 1) < 2 or sum(e[:1] == bytes([entries.KIND]) for e in log) < POOL_FROM:
        return None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(1, mp_context=context)


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
    bodies: _Bodies | None = None
    why = "no --key given"
    pool = None
    try:
        if secret is not None:
            token, why = await sign_in(session, url, secret)
            if token:
                pool = _pool(log)
                bodies, why = await _bodies(session, url, token, pool)
        replayed = _Replay(bodies, client)
        try:
            for index, entry in enumerate(log):
                await replayed.entry(index, entry)
            report = replayed.report(len(log), why)
        except _Parted as e:
            replayed_count = None if bodies is None else replayed.replayed
            report = Report(end, replayed_count, 0, e.index, e.reason)
        if bodies is not None:
            await bodies.finish()
        return report
    except BaseException:
        if bodies is not None:
            bodies.cancel()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _Replay:
    """The state rebuilt from the log, entry by entry (module docstring); `_Parted` at the
    first entry where log and replay part."""

    def __init__(self, bodies: _Bodies | None, client: LogClient) -> None:
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
            if self.bodies is None:
                self._transaction(index, entry, None, None)
            else:
                row = await self.bodies.row(index)
                parsed = None if row is None else await self.bodies.parsed(index)
                self._transaction(index, entry, row, parsed)
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

    def _transaction(
        self, index: int, entry: bytes, row: Row | None, parsed: tx.SignedTx | None
    ) -> None:
        """Check and apply the 0x03 at `index` with its body `row` (None: none served);
        `parsed`: the body as the pool parsed it (None: parse it here)."""
        try:
            committed = entries.parse(entry)
        except Refused as e:
            raise _Parted(index, f"0x03 entry: {e}") from None
        self.last_tx = self.covers = index
        if self.bodies is None:
            return
        if row is None:
            raise _Parted(index, "the ledger served no body for this 0x03 entry")
        try:
            if parsed is None:
                parsed = tx.from_record(row["canonical"].encode(), bytes.fromhex(row["sig"]))
            signed = parsed
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

"""`pharmasync verify --replay --cloud URL [--key FILE]`: replay the contracts from the log
(docs/contracts.md §3, replay grants) and check every committed state root.

With a key holding a replay grant: sign in (POST /v1/auth/challenge, /v1/auth/token), fetch
the log's entries up to the latest 0x04 state root and the stored bodies (GET /v1/tx), then
in log order: fold the 0x06 configuration entries (the regulators come from the log,
gateway/config_entry.py), check each 0x03 commitment against its body and salt, verify the
body's signature again, apply it with the ledger's own engine (cloud/contracts/catalog.py),
and check each 0x04 entry's root, record count and covered index against the state rebuilt.
The first entry where log and replay part is reported. Without a key (or a grant) only the
public entries are checked (each 0x03 and 0x04 parses, each root covers the 0x03 before
it), and the report says so. The log's own consistency and signatures are `verify --cloud`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from cloud.audit.log_client import FetchError, LogClient
from cloud.contracts import auth, catalog, didkey, entries, stateroot, tx
from cloud.contracts.engine import ContractError, State
from device import schnorr
from gateway import config_entry
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
    try:
        return _check(log, bodies, why)
    except _Parted as e:
        return Report(end, None if bodies is None else 0, 0, e.index, e.reason)


def _check(log: list[bytes], bodies: dict[int, dict[str, Any]] | None, why: str) -> Report:
    engine = catalog.engine()
    authority = config_entry.Authority()
    state: State | None = None
    last_tx: int | None = None
    replayed = roots = 0
    for index, entry in enumerate(log):
        kind = entry[0]
        if kind == config_entry.ENTRY_CONFIG:
            try:
                authority = config_entry.next_authority(authority, entry)
            except Refused as e:
                raise _Parted(index, f"configuration entry: {e}") from None
        elif kind == entries.KIND:
            try:
                committed = entries.parse(entry)
            except Refused as e:
                raise _Parted(index, f"0x03 entry: {e}") from None
            last_tx = index
            if bodies is None:
                continue
            row = bodies.get(index)
            if row is None:
                raise _Parted(index, "the ledger served no body for this 0x03 entry")
            try:
                signed = tx.from_record(row["canonical"].encode(), bytes.fromhex(row["sig"]))
                entries.verify(committed, bytes.fromhex(row["salt"]), signed)
                state = State(authority.regulators) if state is None else state
                engine.apply(state, signed, bytes.fromhex(row["salt"]), root=False)
            except (Refused, ValueError, ContractError) as e:
                raise _Parted(index, f"transaction body: {e}") from None
            replayed += 1
        elif kind == stateroot.KIND:
            try:
                root = stateroot.parse(entry)
            except stateroot.StateRootError as e:
                raise _Parted(index, f"0x04 entry: {e}") from None
            if root.covers != last_tx:
                raise _Parted(index, f"root covers {root.covers}, want the 0x03 at {last_tx}")
            roots += 1
            if state is not None and (root.root, root.records) != (state.root, state.count):
                raise _Parted(
                    index,
                    f"logged root {root.root.hex()} ({root.records} records), replay "
                    f"gives {state.root.hex()} ({state.count} records)",
                )
    return Report(len(log), None if bodies is None else replayed, roots, None, why)


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

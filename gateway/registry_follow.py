"""Following the cloud's registry: the gateway learns its boxes from the log, not from
local edits (`pharmasync gateway boxes add` remains for bootstrap and for local fields).

Every `[registry] interval_s` the follower asks the cloud for the registry (0x02) and
configuration (0x06) entries after the last one it saw (GET /v1/registry/entries?after=N,
docs/protocol.md) and checks each one itself, trusting the cloud for nothing:

    bootstrap  the first configuration entry must name exactly the owner keys pinned in
               gateway.toml ([registry] owners), as the log's key is pinned
    authority  every later owner change is signed by an owner current at that point of
               the log, every registry change by an owner current at that point
               (gateway/config_entry.py's one rule, which the cloud and the auditor apply too)

A refused entry (bad signature, unknown owner, a bootstrap naming other keys) is counted by
reason and logged once, never applied. Of the verified registry changes it applies those
that concern its site: a box registered (or moved) to this site is added to the local
registry, keeping the local fields the cloud does not set (zone, lot, BLE address, alarm
profile); a box moved to another site is removed. Gateway registrations and attachments
are not the gateway's business here.

It also keeps the acknowledgement keys the owners authorised (configuration ops ack-key-add
and ack-key-remove): gateway/ack_relay.py checks the alarm acknowledgements the cloud relays
against those of this site.

What it verified is kept on disk (registry_follow.json in the data folder: the last index
seen, the owner set, the acknowledgement keys, the refusals), and the boxes in
registry.json, so a gateway restarted while the cloud is down still has its last verified
registry and resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import aiohttp

from gateway import config_entry, jsonbound, registry_change
from gateway.refusal import Refused
from gateway.registry import Box, Registry
from gateway.settings import Settings

log = logging.getLogger("pharmasync.gateway.registry_follow")

STATE_FILE: Final = "registry_follow.json"
MAX_ANSWER_BYTES: Final = 8 << 20  # a page of 500 entries of under 4 KiB as hex


class FollowError(Exception):
    """The cloud's answer could not be read as a page of entries; str() says why."""


@dataclass
class FollowState:
    """What the follower verified so far (module docstring)."""

    after: int = -1  # the last log index seen (-1: none)
    owners: frozenset[bytes] = frozenset()  # after the last verified configuration entry
    refused: dict[str, int] = field(default_factory=dict)  # refused entries by reason
    applied: int = 0  # registry changes applied to the local registry
    ack_keys: config_entry.AckKeys = frozenset()  # (site, key) authorised to acknowledge

    def to_json(self) -> dict[str, Any]:
        return {
            "after": self.after,
            "owners": sorted(k.hex() for k in self.owners),
            "ack_keys": sorted([site, k.hex()] for site, k in self.ack_keys),
            "refused": dict(sorted(self.refused.items())),
            "applied": self.applied,
        }

    @classmethod
    def from_json(cls, doc: Any) -> FollowState:
        """Read the state document. Raises FollowError naming what is wrong."""
        try:
            return cls(
                after=int(doc["after"]),
                owners=frozenset(bytes.fromhex(k) for k in doc["owners"]),
                refused={str(k): int(v) for k, v in doc["refused"].items()},
                applied=int(doc["applied"]),
                # absent from state files written before acknowledgement keys existed
                ack_keys=frozenset((str(s), bytes.fromhex(k)) for s, k in doc.get("ack_keys", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FollowError(f"state file: malformed ({e!r})") from None


def load_state(path: Path) -> FollowState:
    """The state in `path`, or a fresh one if there is none. Raises FollowError."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return FollowState()
    try:
        return FollowState.from_json(jsonbound.loads(text, max_bytes=1 << 20, what=str(path)))
    except ValueError as e:
        raise FollowError(f"{path}: {e}") from None


def save_state(path: Path, state: FollowState) -> None:
    """Write the state atomically: a crash leaves the old file or the new one."""
    write_json(path, state.to_json())


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write `doc` to `path` atomically (a temporary file, fsync, rename over the old)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump(doc, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def fetch(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], max_bytes: int
) -> bytes:
    """GET `url` and return its body, read up to `max_bytes` + 1 (the parser refuses more).
    Raises FollowError for an answer other than 200, aiohttp.ClientError, TimeoutError."""
    async with session.get(url, params=params) as resp:
        body = await resp.content.read(max_bytes + 1)
        if resp.status != 200:
            raise FollowError(f"GET {url}: HTTP {resp.status}: {body[:200]!r}")
    return body


def parse_page(answer: bytes, after: int) -> list[tuple[int, bytes]]:
    """Return the (log index, entry) pairs of a GET /v1/registry/entries answer, in
    increasing index order after `after`. Raises FollowError for anything else."""
    try:
        doc = jsonbound.loads(answer, max_bytes=MAX_ANSWER_BYTES, what="registry entries")
        items = doc["entries"]
        page = [(item["index"], bytes.fromhex(item["entry"])) for item in items]
    except (ValueError, KeyError, TypeError) as e:
        raise FollowError(f"registry entries: not a page of entries ({e})") from None
    last = after
    for index, entry in page:
        if isinstance(index, bool) or not isinstance(index, int) or index <= last or not entry:
            raise FollowError(f"registry entries: got index {index!r} after {last}")
        last = index
    return page


class RegistryFollower:
    """Fetches, checks and applies the cloud's registry for one gateway (module docstring)."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.pinned = frozenset(settings.registry.owners)
        self.path = settings.data_dir / STATE_FILE
        try:
            self.state = load_state(self.path)
        except FollowError as e:  # nothing is lost: the log is read and checked again
            log.warning("registry: %s; following the registry again from its first entry", e)
            self.state = FollowState()
        self.url = settings.uplink.url.rstrip("/") + "/v1/registry/entries"

    def snapshot(self) -> dict[str, Any]:
        """What the status page and /metrics show of the follower."""
        return self.state.to_json()

    def ack_keys(self) -> frozenset[bytes]:
        """The keys the log's owners authorised to acknowledge this site's alarms, as of
        the last verified configuration entry (gateway/ack_relay.py checks acks by them)."""
        authority = config_entry.Authority(self.state.owners, self.state.ack_keys)
        return authority.ack_keys_for(self.settings.site)

    def check(self, index: int, entry: bytes) -> registry_change.Change | None:
        """Check one entry against the owner set, folding it in; return its registry change
        if it is one, verified. A refused entry is counted, logged and skipped (None)."""
        try:
            if not self.state.owners:  # no configuration yet: this must be the bootstrap
                config_entry.check_pinned(entry, self.pinned)
            before = config_entry.Authority(self.state.owners, self.state.ack_keys)
            after = config_entry.next_authority(before, entry)
            self.state.owners, self.state.ack_keys = after.owners, after.ack_keys
        except Refused as e:
            self.state.refused[e.reason] = self.state.refused.get(e.reason, 0) + 1
            log.warning("registry: refused log entry %d: %s: %s", index, e.reason, e.detail)
            return None
        if entry[0] != registry_change.ENTRY_REGISTRY:
            log.info(
                "registry: owners now %d key(s), %d ack key(s) for this site (log entry %d)",
                len(self.state.owners),
                len(self.ack_keys()),
                index,
            )
            return None
        return registry_change.parse_entry(entry[1:])[2]

    def apply(self, change: registry_change.Change) -> bool:
        """Apply a verified registry change to the local registry if it concerns this
        site's boxes; return whether anything changed."""
        if not isinstance(change, registry_change.BoxRegistration):
            return False  # gateways and attachments are not the gateway's business here
        local = self.registry.get(change.key)
        if change.site == self.settings.site:
            label = change.label
            box = Box(change.key, label, change.site) if local is None else local
            box = replace(box, label=label, site=change.site)
            if box == local:
                return False
            self.registry.put(box)  # zone, lot, BLE address and profile stay as set here
            log.info("registry: box %s (%s) registered here by the cloud", box.device_id, label)
            return True
        if local is None:
            return False
        self.registry.remove(change.key)
        log.info("registry: box %s moved to site %s: removed here", local.device_id, change.site)
        return True

    async def poll(self, session: aiohttp.ClientSession) -> int:
        """Fetch and apply every entry since the last poll; return how many registry changes
        were applied. The state is saved after each page. Raises FollowError,
        aiohttp.ClientError, TimeoutError."""
        applied = 0
        while True:
            params = {} if self.state.after < 0 else {"after": str(self.state.after)}
            body = await fetch(session, self.url, params, MAX_ANSWER_BYTES)
            page = parse_page(body, self.state.after)
            if not page:
                return applied
            for index, entry in page:
                change = self.check(index, entry)
                if change is not None and self.apply(change):
                    applied += 1
                    self.state.applied += 1
                self.state.after = index
            save_state(self.path, self.state)

    async def run(
        self, then: Callable[[aiohttp.ClientSession], Awaitable[object]] | None = None
    ) -> None:
        """Poll every [registry] interval_s until cancelled, and after each poll call `then`
        (gateway/ack_relay.py fetches relayed alarm acks there, checked with the keys just
        followed); an unreachable cloud is logged once per outage, and the last verified
        registry stays in use meanwhile."""
        timeout = aiohttp.ClientTimeout(total=self.settings.uplink.timeout_s)
        down = False
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.poll(session)
                    if then is not None:
                        await then(session)
                    if down:
                        log.info("registry: the cloud answers again")
                    down = False
                except (FollowError, aiohttp.ClientError, TimeoutError) as e:
                    if not down:
                        log.warning(
                            "registry: cannot follow the cloud (%s); keeping the last "
                            "verified registry",
                            e,
                        )
                    down = True
                await asyncio.sleep(self.settings.registry.interval_s)

"""Alarm acknowledgements through the cloud: the gateway fetches the signed acks the cloud
relays to it (GET /v1/gateways/{key}/alarm-acks?after=N, docs/protocol.md, "Alarm
acknowledgements through the cloud"), checks each itself and applies it.

The cloud is trusted for nothing but delivery. Each ack is checked by
`Escalation.apply_signed_ack`, against [notify] ack_keys and the keys the log's owners
authorised for this site (configuration ops ack-key-add and ack-key-remove), as the registry
follower verified them (gateway/registry_follow.py). So every round first follows the log's
authority entries, then fetches the acks: a key authorised or withdrawn before an ack was
relayed is known when it is checked. A refused ack (forged, a key not authorised or since
withdrawn, another gateway's, replayed, an unknown alarm) is counted by reason and never
applied; an applied one stops the escalation, sends the "acknowledged" notice and queues the
gateway's own signed alarm-acknowledged event for the log, as a local acknowledgement does.

What it fetched is kept on disk (ack_relay.json in the data folder: the last id seen, the
counts), so nothing is fetched twice across restarts; with the cloud down, nothing is
lost: the acks wait in the cloud and the local ways to acknowledge keep working.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from gateway import jsonbound
from gateway.escalation import Escalation
from gateway.registry_follow import FollowError, RegistryFollower, fetch, write_json
from gateway.settings import Settings

log = logging.getLogger("pharmasync.gateway.ack_relay")

STATE_FILE: Final = "ack_relay.json"
MAX_ANSWER_BYTES: Final = 4 << 20  # a page of 100 acks of at most 2 KiB each, with room
PAGE: Final = 100  # acks asked for at a time


@dataclass
class RelayState:
    """What the relay fetched so far (module docstring)."""

    after: int = 0  # the last ack id fetched (0: none; the cloud's ids start at 1)
    applied: int = 0  # acks that acknowledged an alarm
    refused: dict[str, int] = field(default_factory=dict)  # refused acks by reason

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "applied": self.applied, "refused": dict(self.refused)}

    @classmethod
    def load(cls, path: Path) -> RelayState:
        """The state in `path`, or a fresh one if there is none or it is damaged (then
        every relayed ack is fetched again: those applied before are refused as replayed)."""
        try:
            doc = jsonbound.loads(path.read_bytes(), max_bytes=1 << 20, what=str(path))
            refused = {str(k): int(v) for k, v in doc["refused"].items()}
            return cls(int(doc["after"]), int(doc["applied"]), refused)
        except FileNotFoundError:
            return cls()
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("alarm acks: %s: malformed (%r); fetching every relayed ack again", path, e)
            return cls()

    def save(self, path: Path) -> None:
        """Write the state atomically: a crash leaves the old file or the new one."""
        write_json(path, self.to_json())


def parse_page(answer: bytes, after: int) -> list[tuple[int, bytes]]:
    """Return the (id, signed ack wire) pairs of a GET .../alarm-acks answer, ids
    increasing after `after`. Raises FollowError for anything else."""
    try:
        doc = jsonbound.loads(answer, max_bytes=MAX_ANSWER_BYTES, what="alarm acks")
        page = [(item["id"], item["signed_ack"]) for item in doc["acks"]]
    except (ValueError, KeyError, TypeError) as e:
        raise FollowError(f"alarm acks: not a page of acks ({e})") from None
    found = []
    last = after
    for ack_id, signed in page:
        if isinstance(ack_id, bool) or not isinstance(ack_id, int) or ack_id <= last:
            raise FollowError(f"alarm acks: got id {ack_id!r} after {last}")
        # The compact JSON the ack was signed in (gateway/alarm_ack.py): what it checks.
        found.append((ack_id, json.dumps(signed, separators=(",", ":")).encode()))
        last = ack_id
    return found


class AckRelay:
    """Fetches, checks and applies the acks the cloud relays to this gateway (module
    docstring); runs the registry follower's rounds too, so keys are current."""

    def __init__(
        self,
        settings: Settings,
        gateway_key: bytes,
        escalation: Escalation,
        follower: RegistryFollower,
    ) -> None:
        self.settings = settings
        self.escalation = escalation
        self.follower = follower
        self.path = settings.data_dir / STATE_FILE
        self.state = RelayState.load(self.path)
        base = settings.uplink.url.rstrip("/")
        self.url = f"{base}/v1/gateways/{gateway_key.hex()}/alarm-acks"

    def snapshot(self) -> dict[str, Any]:
        """What the status page and /metrics show of the relay."""
        return self.state.to_json()

    async def poll(self, session: aiohttp.ClientSession) -> int:
        """Fetch and apply every ack relayed since the last poll; return how many were
        applied. The state is saved after each page. Raises FollowError,
        aiohttp.ClientError, TimeoutError."""
        applied = 0
        while True:
            params = {"after": str(self.state.after), "limit": str(PAGE)}
            body = await fetch(session, self.url, params, MAX_ANSWER_BYTES)
            page = parse_page(body, self.state.after)
            if not page:
                return applied
            keys = self.follower.ack_keys()
            for ack_id, wire in page:
                result = self.escalation.apply_signed_ack(wire, log_keys=keys)
                if result.ok:
                    applied += 1
                    self.state.applied += 1
                    log.info("alarm acks: relayed ack %d: %s", ack_id, result)
                else:
                    reason = result.reason
                    self.state.refused[reason] = self.state.refused.get(reason, 0) + 1
                    log.warning("alarm acks: refused relayed ack %d: %s", ack_id, result)
                self.state.after = ack_id
            self.state.save(self.path)

    async def run(self) -> None:
        """Every [registry] interval_s, follow the log's authority, then fetch the relayed
        acks, until cancelled (the follower's loop: an outage is logged once)."""
        await self.follower.run(then=self.poll)

"""Following the lots the site's boxes are on (issue 11 §4): the gateway alarms on the
strictest of each box's own profile and the storage profiles of its lots.

Every [lots] interval_s the follower asks the cloud ([uplink] url), proving it holds the
gateway's registered key (gateway/gateway_auth.py):

    POST /v1/auth/challenge                  a single-use challenge
    GET  /v1/gateways/<key>/lots             signed over it: the lots of this site's boxes

checks the answer (gateway/lot_profiles.py parse_answer: this gateway's, every profile
valid), keeps it on disk (lots_follow.json in the data folder, written atomically) and
applies it (Gateway.set_lots). The lots of a box apply while their window is open by the
gateway's clock, so a window that starts or ends between asks takes effect at the next
apply (each interval, whether or not the cloud answers).

The cloud away, or refusing (401/403: say, this gateway is not registered), the follower
keeps alarming on its last answer, logs the outage once with the reason, and asks again
after a backoff doubling from interval_s up to max_backoff_s. A gateway restarted without
the cloud starts from the answer on disk.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from typing import Any, Final

import aiohttp

from gateway import gateway_auth, jsonbound
from gateway.lot_profiles import MAX_ANSWER_BYTES, AnswerError, LotOn, parse_answer, to_answer
from gateway.registry_follow import write_json
from gateway.service import Gateway

log = logging.getLogger("pharmasync.gateway.lots_follow")

STATE_FILE: Final = "lots_follow.json"
MAX_PROBLEM_BYTES: Final = 4096  # of a refusal's body, for the log
CHALLENGE_PATH: Final = "/v1/auth/challenge"


class LotsState(enum.Enum):
    NEVER = "never asked"  # no answer yet, none on disk
    CURRENT = "current"  # the last ask was answered
    STALE = "stale"  # the last ask failed: alarming on the last answer


class LotsError(Exception):
    """The cloud did not answer with this gateway's lots; str() says why."""


def path_of(gateway: bytes) -> str:
    """The route's path for this gateway, as signed (cloud/services/gateway_lots.py)."""
    return f"/v1/gateways/{gateway.hex()}/lots"


class LotsFollower:
    """Asks, keeps and applies the lots of one gateway's boxes (module docstring). Built,
    it has applied the answer on disk, if any, to the gateway's alarms."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings.lots
        self.base = gateway.settings.uplink.url.rstrip("/")
        self.path = gateway.settings.data_dir / STATE_FILE
        self.state = LotsState.NEVER
        self.answered: int | None = None  # the cloud's time (ms) of the answer in use
        self.fetched: float | None = None  # when it arrived (the gateway's clock)
        self.last_error = ""
        self.lots: dict[bytes, tuple[LotOn, ...]] = {}
        self._load()
        self.apply()  # the answer on disk, if any, from the start

    def _load(self) -> None:
        """Start from the answer on disk, if any (a damaged file is logged and ignored)."""
        try:
            doc = jsonbound.loads(self.path.read_bytes(), max_bytes=1 << 24, what=str(self.path))
            raw = json.dumps(doc["answer"]).encode() if isinstance(doc, dict) else b""
            self.answered, self.lots = parse_answer(raw, self.gateway.key)
            self.fetched = float(doc["fetched"])
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as e:  # AnswerError is a ValueError
            log.error("lots: %s unreadable (%s): no lots until the cloud answers", self.path, e)
            self.answered, self.fetched, self.lots = None, None, {}
            return
        self.state = LotsState.STALE
        log.info("lots: alarming on the last answer (%s) until the cloud answers", self.path)

    def _save(self) -> None:
        answer = to_answer(
            self.gateway.key, self.gateway.settings.site, self.answered or 0, self.lots
        )
        write_json(self.path, {"fetched": self.fetched, "answer": answer})

    def apply(self, now: float | None = None) -> None:
        """Apply the lots in use to the gateway's alarms at `now`; log what changed."""
        now = time.time() if now is None else now
        for device_id, applied in self.gateway.set_lots(self.lots, now).items():
            names = ", ".join(applied.lots) or "none"
            p = applied.profile
            log.info(
                "lots: box %s on lots %s: alarming on %g..%g °C, delays %g s / %g s",
                device_id,
                names,
                p.low_c,
                p.high_c,
                p.delay_consecutive_s,
                p.delay_cumulative_s,
            )
            if applied.conflicts:
                log.error(
                    "lots: box %s is on lots whose ranges have nothing in common; "
                    "not alarming on %s (move the box)",
                    device_id,
                    ", ".join(applied.conflicts),
                )

    async def _challenge(self, session: aiohttp.ClientSession) -> bytes:
        async with session.post(self.base + CHALLENGE_PATH) as resp:
            body = await resp.content.read(MAX_PROBLEM_BYTES)
            if resp.status != 201:
                raise LotsError(f"POST {CHALLENGE_PATH}: HTTP {resp.status}: {body[:300]!r}")
        try:
            doc = jsonbound.loads(body, max_bytes=MAX_PROBLEM_BYTES, what="challenge")
            challenge = bytes.fromhex(doc["challenge"])
        except (ValueError, KeyError, TypeError) as e:
            raise LotsError(f"POST {CHALLENGE_PATH}: not a challenge ({e})") from None
        if len(challenge) != gateway_auth.CHALLENGE_BYTES:
            raise LotsError(f"POST {CHALLENGE_PATH}: a challenge of {len(challenge)} bytes")
        return challenge

    async def fetch(
        self, session: aiohttp.ClientSession
    ) -> tuple[int, dict[bytes, tuple[LotOn, ...]]]:
        """Ask the cloud for this gateway's lots and return them checked (parse_answer).
        Raises LotsError (a refusal, with the cloud's reason), aiohttp.ClientError,
        TimeoutError."""
        challenge = await self._challenge(session)
        path = path_of(self.gateway.key)
        signed = gateway_auth.headers(self.gateway.secret, challenge, "GET", path)
        async with session.get(self.base + path, headers=signed) as resp:
            if resp.status != 200:
                body = await resp.content.read(MAX_PROBLEM_BYTES)
                raise LotsError(
                    f"GET {path}: HTTP {resp.status}: {body[:500].decode(errors='replace')}"
                )
            body = await resp.content.read(MAX_ANSWER_BYTES + 1)  # more is refused
        try:
            return parse_answer(body, self.gateway.key)
        except AnswerError as e:
            raise LotsError(f"GET {path}: refused the answer: {e}") from None

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """Ask once; on an answer keep it, save it and apply it. Raises as fetch()."""
        self.answered, self.lots = await self.fetch(session)
        self.fetched = time.time()
        self._save()
        self.state = LotsState.CURRENT
        self.apply()

    def snapshot(self) -> dict[str, Any]:
        """What the status page shows of the follower."""
        return {
            "state": self.state.value,
            "answered": self.answered,
            "fetched": self.fetched,
            "last_error": self.last_error,
            "boxes": {k.hex(): [lot.name for lot in v] for k, v in self.lots.items()},
        }

    def wait_s(self, failures: int) -> float:
        """The wait before the next ask after `failures` consecutive failures: interval_s,
        then doubling from it up to max_backoff_s (never shorter than interval_s)."""
        backoff = self.settings.interval_s * 2 ** min(failures, 32)
        return max(self.settings.interval_s, min(self.settings.max_backoff_s, backoff))

    async def run(self) -> None:
        """Ask every interval_s until cancelled; on failure keep the last answer, log once
        per outage and back off (doubling up to max_backoff_s)."""
        timeout = aiohttp.ClientTimeout(total=self.gateway.settings.uplink.timeout_s)
        failures = 0
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.poll(session)
                    if self.last_error:
                        log.info("lots: the cloud answers again")
                    self.last_error = ""
                    failures = 0
                except (LotsError, aiohttp.ClientError, TimeoutError) as e:
                    error = str(e) or type(e).__name__
                    if not self.last_error:
                        kept = "the last answer" if self.answered is not None else "no lots"
                        log.warning(
                            "lots: cannot get this gateway's lots from the cloud (%s); "
                            "alarming on %s meanwhile",
                            error,
                            kept,
                        )
                    self.last_error = error
                    if self.state is LotsState.CURRENT:
                        self.state = LotsState.STALE
                    self.apply()  # windows that opened or closed meanwhile
                    failures += 1
                await asyncio.sleep(self.wait_s(failures))

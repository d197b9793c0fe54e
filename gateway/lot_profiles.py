"""The lots a box is on, as the cloud tells its gateway (GET /v1/gateways/{key}/lots,
docs/protocol.md "Lots of a gateway's boxes"), and the profile a box's zone alarms on
because of them: the strictest of its own and theirs (gateway/alarms.py with_lots).

Pure: no I/O, no clock (the caller passes the time). gateway/lots_follow.py fetches and
keeps the answer; gateway/service.py applies it to the alarm engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway import jsonbound
from gateway.alarms import AlarmError, AlarmProfile, LotProfile, with_lots

MAX_ANSWER_BYTES: Final = 8 << 20  # thousands of boxes, each on a few lots
MAX_MS: Final = 2**63 - 1


class AnswerError(ValueError):
    """The cloud's answer is not a lots answer for this gateway; str() says what is wrong."""


@dataclass(frozen=True)
class LotOn:
    """A box is on lot (gtin, lot) from `start` to `end` (ms, Unix; end None: open), under
    the lot's storage `profile`."""

    gtin: str
    lot: str
    start: int
    end: int | None
    profile: LotProfile

    @property
    def name(self) -> str:
        """How logs, events and the status page name the lot: "<gtin>/<lot>"."""
        return f"{self.gtin}/{self.lot}"

    def applies(self, now_ms: int) -> bool:
        """Whether the box is on the lot at `now_ms` (start <= now <= end)."""
        return self.start <= now_ms and (self.end is None or now_ms <= self.end)

    def to_json(self) -> dict[str, Any]:
        """The lot as the cloud answers it."""
        return {
            "gtin": self.gtin,
            "lot": self.lot,
            "start": self.start,
            "end": self.end,
            "profile": self.profile.to_signed(),
        }


BoxLots = Mapping[bytes, Sequence[LotOn]]


def _ms(value: object, where: str, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if type(value) is not int or not 0 <= value <= MAX_MS:
        raise AnswerError(f"{where}: got {str(value)[:40]!r}, want ms 0..2^63-1")
    return value


def _text(value: object, where: str) -> str:
    if type(value) is not str or not 0 < len(value) <= 64:
        raise AnswerError(f"{where}: got {str(value)[:40]!r}, want 1 to 64 characters")
    return value


def _lot(item: object, where: str) -> LotOn:
    if not isinstance(item, dict) or set(item) != {"gtin", "lot", "start", "end", "profile"}:
        raise AnswerError(f"{where}: want {{gtin, lot, start, end, profile}}")
    start = _ms(item["start"], f"{where}.start")
    assert start is not None
    try:
        profile = LotProfile.from_signed(item["profile"])
    except AlarmError as e:
        raise AnswerError(f"{where}.profile: {e}") from None
    gtin, lot = _text(item["gtin"], f"{where}.gtin"), _text(item["lot"], f"{where}.lot")
    return LotOn(gtin, lot, start, _ms(item["end"], f"{where}.end", True), profile)


def parse_answer(body: bytes, gateway: bytes) -> tuple[int, dict[bytes, tuple[LotOn, ...]]]:
    """Return (the answer's time in ms, the lots by box key) of a GET
    /v1/gateways/{key}/lots answer meant for `gateway`. Raises AnswerError for anything
    else: not JSON within MAX_ANSWER_BYTES, another gateway's, a malformed box, lot or
    profile (each named)."""
    try:
        doc = jsonbound.loads(body, max_bytes=MAX_ANSWER_BYTES, what="lots answer")
    except ValueError as e:
        raise AnswerError(str(e)) from None
    if not isinstance(doc, dict) or set(doc) != {"gateway", "site", "time", "boxes"}:
        raise AnswerError("want {gateway, site, time, boxes}")
    if doc["gateway"] != gateway.hex():
        raise AnswerError(f"gateway: got {str(doc['gateway'])[:70]!r}, want {gateway.hex()}")
    when = _ms(doc["time"], "time")
    assert when is not None
    if not isinstance(doc["boxes"], list):
        raise AnswerError("boxes: want a list")
    out: dict[bytes, tuple[LotOn, ...]] = {}
    for i, entry in enumerate(doc["boxes"]):
        where = f"boxes[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"box", "lots"}:
            raise AnswerError(f"{where}: want {{box, lots}}")
        try:
            box = bytes.fromhex(entry["box"]) if isinstance(entry["box"], str) else b""
        except ValueError:
            box = b""
        if len(box) != 32 or box in out or not isinstance(entry["lots"], list):
            raise AnswerError(f"{where}: want a box key (64 hex, once) and a list of lots")
        out[box] = tuple(_lot(item, f"{where}.lots[{j}]") for j, item in enumerate(entry["lots"]))
    return when, out


def to_answer(gateway: bytes, site: str, when: int, lots: BoxLots) -> dict[str, Any]:
    """Return the answer parse_answer reads: what the cloud sends (cloud/services/
    gateway_lots.py), and what the gateway keeps on disk."""
    boxes = [{"box": k.hex(), "lots": [lot.to_json() for lot in v]} for k, v in lots.items()]
    return {"gateway": gateway.hex(), "site": site, "time": when, "boxes": boxes}


@dataclass(frozen=True)
class Applied:
    """What a box's zone alarms on: `profile`, made of its own and `lots` (by name: those
    that apply now and fit together); `conflicts` names lots left out because their range
    has nothing in common with the others' (the box cannot keep both)."""

    profile: AlarmProfile
    lots: Mapping[str, LotProfile] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()


def combine(zone: AlarmProfile, lots: Iterable[LotOn], now_ms: int) -> Applied:
    """Return what the zone alarms on at `now_ms` while its box is on `lots`: with_lots of
    its own profile and those that apply now, taken in name order; a lot whose range has
    nothing in common with those before it is left out and named in `conflicts`."""
    kept: dict[str, LotProfile] = {}
    conflicts = []
    profile = zone
    for lot in sorted((x for x in lots if x.applies(now_ms)), key=lambda x: x.name):
        try:
            profile = with_lots(profile, [lot.profile])
        except AlarmError:
            conflicts.append(lot.name)
            continue
        kept[lot.name] = lot.profile
    return Applied(with_lots(zone, kept.values()), kept, tuple(conflicts))

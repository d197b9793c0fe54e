"""Gateway events: what a site's gateway saw happen (alarms raised, cleared and acknowledged,
a periodic status of each box, site alarms), signed by the gateway and kept in the ledger's
log as entries of their own kind (0x05). Documented byte by byte in docs/protocol.md,
"Gateway events".

An event is one JSON object with exactly these members:

    gateway  the gateway's x-only key, 64 lowercase hex characters
    seq      the gateway's event sequence number: 0, 1, 2, ... with no gaps
    time     Unix seconds (an integer)
    kind     one of KINDS
    body     an object of at most MAX_BODY canonical bytes whose members are those KINDS
             allows for the kind, each an integer, a string, or (rejects) an object of
             integers: events name boxes and zones, never a lot

Canonical bytes are RFC 8785 (JCS), written by gateway/jcs.py, the one canonicalizer (tested
against the independent `rfc8785` package). Events hold only integers within +-(2**53 - 1),
strings of valid UTF-8, and keys of printable ASCII. The gateway signs tagged_hash(TAG,
canonical bytes) with BIP-340; the record kept in the spool and the log is signature
(64 bytes) || canonical bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple

from device import schnorr
from gateway.jcs import MAX_SAFE_INTEGER, canonicalize

TAG: Final = b"PharmaSync/event/v1"
SIGNATURE_SIZE: Final = 64
MAX_INT: Final = MAX_SAFE_INTEGER  # exact in IEEE doubles: what RFC 8785 (gateway/jcs.py) writes
MAX_STRING: Final = 200  # UTF-8 bytes of one string
MAX_COUNTS: Final = 32  # members of a counts object (rejects by reason)
MAX_BODY: Final = 1024  # canonical bytes of the body
MAX_EVENT: Final = 1400  # canonical bytes of the whole event (a body plus the fixed members)
MEMBERS: Final = ("body", "gateway", "kind", "seq", "time")

ALARM_RAISED: Final = "alarm-raised"
ALARM_CLEARED: Final = "alarm-cleared"
ALARM_ACKNOWLEDGED: Final = "alarm-acknowledged"
BOX_STATUS: Final = "box-status"
SITE_ALARM: Final = "site-alarm"

# What a body may hold, per kind: member -> (type, required). Types: "int" (an integer),
# "str" (a string), "key" (32 bytes as lowercase hex), "counts" (an object of integers).
# A closed list: no event can carry a lot, a shipment or anything else not named here.
_ALARM = {
    "alarm": ("str", True),  # high, low, cumulative, sensor, silent, mkt
    "zone": ("str", True),  # the zone (or box id) the alarm is for
    "box": ("key", False),
    "value_cc": ("int", False),  # the reading or MKT that did it, centi-degrees C
    "detail": ("str", False),
}
KINDS: Final[dict[str, dict[str, tuple[str, bool]]]] = {
    ALARM_RAISED: _ALARM,
    ALARM_CLEARED: _ALARM,
    ALARM_ACKNOWLEDGED: _ALARM | {"by": ("str", False)},  # who acknowledged it
    BOX_STATUS: {
        "box": ("key", True),
        "zone": ("str", False),
        "last_seen": ("int", False),  # Unix seconds the gateway last accepted a reading
        "last_seq": ("int", False),  # the box's highest committed seq
        "backlog": ("int", False),  # readings the box holds unacknowledged, as it reports
        "battery_low": ("int", False),  # 1 if the box reports a low battery, else 0
        "rejects": ("counts", True),  # messages refused since the last status, by reason
    },
    SITE_ALARM: {
        "alarm": ("str", True),  # e.g. spool
        "state": ("str", True),  # raised | cleared
        "bytes": ("int", False),
        "max_bytes": ("int", False),
        "detail": ("str", False),
    },
}
_KEY_HEX = re.compile("[0-9a-f]{64}")
_PRINTABLE = re.compile("[ -~]{1,64}")  # a counts key: printable ASCII


class EventError(ValueError):
    """An event that is malformed, too large or not canonical. `reason` is "event <field>"
    ("event" for the event's shape): what the cloud answers; str() says got/want."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = "event" if field == "event" else f"event {field}"
        self.detail = detail


class Draft(NamedTuple):
    """An event before the spool gives it its seq and the gateway signs it."""

    time: float  # Unix seconds; floored to an integer when signed
    kind: str
    body: dict[str, Any]


def _int(field: str, value: object, lo: int = -MAX_INT, hi: int = MAX_INT) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise EventError(field, f"got {str(value)[:40]!r}, want an integer {lo} to {hi}")
    return value


def _str(field: str, value: object) -> str:
    if type(value) is not str:
        raise EventError(field, f"got {type(value).__name__}, want a string")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise EventError(field, "got a string that is not valid UTF-8") from None
    if size > MAX_STRING:
        raise EventError(field, f"got a string of {size} bytes, want at most {MAX_STRING}")
    return value


def check_body(kind: str, body: object) -> None:
    """Require `body` to be what KINDS allows for `kind`. Raises EventError naming the
    member (field "body" or "body.<member>") or the kind."""
    allowed = KINDS.get(kind) if type(kind) is str else None
    if allowed is None:
        raise EventError("kind", f"got {str(kind)[:40]!r}, want one of {', '.join(KINDS)}")
    if not isinstance(body, dict):
        raise EventError("body", f"got {type(body).__name__}, want an object")
    for name in body:
        if name not in allowed:
            raise EventError(
                "body", f"{kind}: got member {str(name)[:40]!r}, want only {', '.join(allowed)}"
            )
    for name, (kind_of, required) in allowed.items():
        field = f"body.{name}"
        if name not in body:
            if required:
                raise EventError(field, f"{kind}: missing, want a {kind_of}")
            continue
        value = body[name]
        if kind_of == "int":
            _int(field, value)
        elif kind_of == "str":
            _str(field, value)
        elif kind_of == "key":
            if type(value) is not str or not _KEY_HEX.fullmatch(value):
                raise EventError(field, f"got {str(value)[:80]!r}, want 64 lowercase hex")
        else:  # counts
            if not isinstance(value, dict) or len(value) > MAX_COUNTS:
                raise EventError(field, f"want an object of at most {MAX_COUNTS} integers")
            for reason, count in value.items():
                if type(reason) is not str or not _PRINTABLE.fullmatch(reason):
                    raise EventError(field, f"got key {str(reason)[:80]!r}, want printable ASCII")
                _int(field, count, 0)
    size = len(canonicalize(body))
    if size > MAX_BODY:
        raise EventError("size", f"got a body of {size} canonical bytes, want at most {MAX_BODY}")


@dataclass(frozen=True)
class Event:
    """One gateway event (module docstring); signature None until signed."""

    gateway: bytes
    seq: int
    time: int
    kind: str
    body: Mapping[str, Any]
    signature: bytes | None = None

    def __post_init__(self) -> None:
        """Raises EventError naming the first field that is out of range or malformed."""
        if type(self.gateway) is not bytes or len(self.gateway) != 32:
            raise EventError("gateway", f"got {self.gateway!r:.80}, want 32 bytes")
        _int("seq", self.seq, 0)
        _int("time", self.time, 0)
        check_body(self.kind, self.body)
        if self.signature is not None and (
            type(self.signature) is not bytes or len(self.signature) != SIGNATURE_SIZE
        ):
            raise EventError("signature", f"want {SIGNATURE_SIZE} bytes")

    def to_json(self) -> dict[str, Any]:
        """Return the signed object (without the signature)."""
        return {
            "body": dict(self.body),
            "gateway": self.gateway.hex(),
            "kind": self.kind,
            "seq": self.seq,
            "time": self.time,
        }

    def canonical(self) -> bytes:
        """Return the event's RFC 8785 bytes: what is signed."""
        return canonicalize(self.to_json())

    def message(self) -> bytes:
        """Return the 32-byte message the gateway signs: tagged_hash(TAG, canonical bytes)."""
        return schnorr.tagged_hash(TAG, self.canonical())

    def sign(self, secret: bytes, aux: bytes | None = None) -> Event:
        """Return this event signed with `secret`. Raises EventError if `secret` is not
        the gateway's key."""
        if schnorr.pubkey(secret) != self.gateway:
            raise EventError("gateway", "the signing secret does not match the event's key")
        return replace(self, signature=schnorr.sign(secret, self.message(), aux))

    def verify_signature(self) -> bool:
        """Return True if the event carries a valid BIP-340 signature by its gateway."""
        return self.signature is not None and schnorr.verify(
            self.gateway, self.message(), self.signature
        )

    def encode(self) -> bytes:
        """Return the record: signature (64 bytes) || canonical bytes. Requires a signature."""
        if self.signature is None:
            raise EventError("signature", "got none, want 64 bytes: sign the event first")
        return self.signature + self.canonical()

    def to_wire(self) -> dict[str, Any]:
        """Return the event as POST /v1/events carries it: {"event": ..., "signature": hex}."""
        if self.signature is None:
            raise EventError("signature", "got none, want 64 bytes: sign the event first")
        return {"event": self.to_json(), "signature": self.signature.hex()}


def from_json(obj: object, signature: bytes | None = None) -> Event:
    """Return the Event an object of exactly MEMBERS describes. Raises EventError."""
    if not isinstance(obj, dict):
        raise EventError("event", f"got {type(obj).__name__}, want an object")
    if sorted(obj) != list(MEMBERS):
        raise EventError("event", f"got members {sorted(obj)!r:.200}, want {list(MEMBERS)}")
    gateway = obj["gateway"]
    if type(gateway) is not str or not _KEY_HEX.fullmatch(gateway):
        raise EventError("gateway", f"got {str(gateway)[:80]!r}, want 64 lowercase hex")
    event = Event(bytes.fromhex(gateway), obj["seq"], obj["time"], obj["kind"], obj["body"])
    size = len(event.canonical())
    if size > MAX_EVENT:
        raise EventError("size", f"got {size} canonical bytes, want at most {MAX_EVENT}")
    return replace(event, signature=signature)


def from_wire(item: object) -> Event:
    """Return the signed Event of one POST /v1/events item (Event.to_wire). The signature
    is not verified here. Raises EventError."""
    if not isinstance(item, dict) or sorted(item) != ["event", "signature"]:
        raise EventError("event", 'want an object {"event": {...}, "signature": "<hex>"}')
    sig = item["signature"]
    if type(sig) is not str or not re.fullmatch("[0-9a-f]{128}", sig):
        raise EventError("signature", f"got {str(sig)[:140]!r}, want 64 bytes as lowercase hex")
    return from_json(item["event"], bytes.fromhex(sig))


def decode(record: bytes) -> Event:
    """Return the signed Event of a record (signature || canonical bytes), requiring the
    bytes to be canonical. The signature is not verified here. Raises EventError."""
    if len(record) > SIGNATURE_SIZE + MAX_EVENT:
        raise EventError("size", f"got {len(record)} bytes, want at most {64 + MAX_EVENT}")
    signature, data = bytes(record[:SIGNATURE_SIZE]), bytes(record[SIGNATURE_SIZE:])
    if len(signature) != SIGNATURE_SIZE:
        raise EventError("signature", f"got {len(signature)} bytes, want {SIGNATURE_SIZE}")
    try:
        obj = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EventError("event", f"not JSON: {str(e)[:80]}") from None
    event = from_json(obj, signature)
    if event.canonical() != data:
        raise EventError("event", "the bytes are not in canonical form (RFC 8785)")
    return event


# -- drafts the gateway makes ----------------------------------------------------------


def clip(text: str, limit: int = MAX_STRING) -> str:
    """Cut `text` to `limit` UTF-8 bytes on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def centi(value_c: float) -> int:
    """Return degrees C as an integer number of centi-degrees (signed bytes hold no floats)."""
    if not math.isfinite(value_c):
        raise EventError("value_cc", f"got {value_c}, want a finite temperature")
    return round(value_c * 100)


def alarm_draft(
    state: str,
    alarm: str,
    zone: str,
    time_s: float,
    value_c: float | None = None,
    detail: str = "",
    box: bytes | None = None,
) -> Draft:
    """Return the draft of an alarm event: `state` raised, cleared or acknowledged."""
    body: dict[str, Any] = {"alarm": clip(alarm), "zone": clip(zone)}
    if value_c is not None:
        body["value_cc"] = centi(value_c)
    if detail:
        body["detail"] = clip(detail)
    if box is not None:
        body["box"] = box.hex()
    return Draft(time_s, f"alarm-{state}", body)


# -- the upload page (POST /v1/events) -------------------------------------------------

MAX_PAGE: Final = 100  # events per POST /v1/events


def page(events: list[Event]) -> dict[str, Any]:
    """Return the POST /v1/events body for signed events (consecutive, oldest first)."""
    return {"events": [e.to_wire() for e in events]}


def parse_page(obj: object) -> list[Event]:
    """Return the events of a POST /v1/events body: 1 to MAX_PAGE signed events of one
    gateway with consecutive seqs, oldest first (signatures are not verified here).
    Raises EventError: field "page" for the page's shape, else the event's own field with
    the event's position in the detail."""
    if not isinstance(obj, dict) or list(obj) != ["events"] or not isinstance(obj["events"], list):
        raise EventError("page", 'want {"events": [{"event": {...}, "signature": "<hex>"}, ...]}')
    items = obj["events"]
    if not 1 <= len(items) <= MAX_PAGE:
        raise EventError("page", f"got {len(items)} events, want 1 to {MAX_PAGE}")
    events = []
    for i, item in enumerate(items):
        try:
            events.append(from_wire(item))
        except EventError as e:
            raise EventError(e.field, f"event {i}: {e.detail}") from None
    first = events[0]
    for i, ev in enumerate(events):
        if ev.gateway != first.gateway:
            raise EventError("page", f"event {i}: another gateway than event 0's")
        if ev.seq != first.seq + i:
            raise EventError("page", f"event {i}: got seq {ev.seq}, want {first.seq + i}")
    return events

"""Registry changes: gateways, boxes and their attachments, each a request signed by an
owner key and kept in the log, so auditors can see who registered what, and when. The
format lives here, upstream of the cloud, because gateways follow the cloud's registry
(gateway/registry_follow.py).

A request travels as JSON:

    {"change": {"op": "gateway", "key": "<hex>", "site": "w1", "time": 1767225600},
     "owner": "<hex x-only key>", "signature": "<hex BIP-340>"}

    op        type                 fields                   what it does
    gateway   GatewayRegistration  key, site                register (or move) a gateway
    box       BoxRegistration      key, site, label         register (or relabel) a box
    attach    Attachment           key, subject, start, end attach a box to a lot, shipment
                                                            or zone for [start, end) Unix
                                                            seconds (end null: open)

Each op is its own frozen dataclass (`Change` is their union), so a reader dispatches on the
type (`match`) and never meets a field its op does not carry.

The owner signs BIP-340 over tagged_hash("PharmaSync/registry/v1", canonical change), the
canonical change being its JSON with sorted keys and no spaces. `time` (Unix seconds) must be
within MAX_SKEW of the cloud's clock, and an exact replay is refused because its log entry
already exists. The log entry is 0x02 || owner || signature || canonical change.

Limits, checked where a request enters: at most MAX_REQUEST_BYTES of JSON nested within
gateway/jsonbound.py's depth; `time`, `start` and `end` integers 0 to 2**63 - 1 (what the
databases hold), `end` > `start`; site, label and subject at most MAX_TEXT characters and
no control characters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from typing import Any, ClassVar, Final

from gateway import signed_change
from gateway.refusal import INT64_MAX, Refused, hex_field, int_field

ENTRY_REGISTRY = 0x02  # the log entry kind (cloud/log/kinds.py's table)
TAG = b"PharmaSync/registry/v1"
MAX_SKEW = signed_change.MAX_SKEW  # seconds between the request's time and the cloud's clock
MAX_TEXT = 200  # characters in a site, label or subject
MAX_REQUEST_BYTES = signed_change.MAX_REQUEST_BYTES  # a request's JSON: under 2 KiB here
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1: PostgreSQL stores no NUL


class RegistryError(Refused, ValueError):
    """A refused registry request: `reason` names the check, `status` the HTTP status."""


def text_field(value: object, name: str, *, empty: bool = False) -> str:
    """Return `value` if it is text a registry field holds: a string of 1 (0 if `empty`) to
    MAX_TEXT characters without control characters. Raises RegistryError naming `name`."""
    if not isinstance(value, str):
        raise RegistryError(name, f"got {type(value).__name__}, want a string")
    if len(value) > MAX_TEXT or (not empty and not value):
        raise RegistryError(name, f"got {len(value)} characters, want 1 to {MAX_TEXT}")
    if bad := _CONTROL.search(value):
        raise RegistryError(name, f"got control character {bad.group()!r}, want printable text")
    return value


def _check(key: bytes, texts: dict[str, str], time: int, *, empty: str = "") -> None:
    """Check a change's key, its text fields (`empty` names the one that may be empty) and
    its time, in this order. Raises RegistryError naming the first bad field."""
    if len(key) != 32:
        raise RegistryError("key", f"got {len(key)} bytes, want a 32-byte x-only key")
    for name, value in texts.items():
        text_field(value, name, empty=name == empty)
    int_field(time, "time", 0, INT64_MAX, RegistryError)


@dataclasses.dataclass(frozen=True, slots=True)
class _Change:
    """What every registry change carries: the box's or gateway's key and the request's
    time. Its canonical form is every field of its type, with its op."""

    OP: ClassVar[str]
    key: bytes
    time: int

    def canonical(self) -> bytes:
        """The bytes the owner signs: the change's JSON, sorted keys, no spaces."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return signed_change.canonical_json(fields | {"op": self.OP, "key": self.key.hex()})


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayRegistration(_Change):
    """op "gateway": register gateway `key` at `site`, or move it there."""

    OP: ClassVar[str] = "gateway"
    site: str

    def __post_init__(self) -> None:
        _check(self.key, {"site": self.site}, self.time)


@dataclasses.dataclass(frozen=True, slots=True)
class BoxRegistration(_Change):
    """op "box": register sensor box `key` at `site` under `label`, or move or relabel it."""

    OP: ClassVar[str] = "box"
    site: str
    label: str = ""

    def __post_init__(self) -> None:
        _check(self.key, {"site": self.site, "label": self.label}, self.time, empty="label")


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment(_Change):
    """op "attach": box `key` watches `subject` (a lot, shipment or zone) for [start, end)
    in Unix seconds; `end` None leaves the window open."""

    OP: ClassVar[str] = "attach"
    subject: str
    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        _check(self.key, {"subject": self.subject}, self.time)
        int_field(self.start, "start", 0, INT64_MAX, RegistryError)
        if self.end is not None:
            int_field(self.end, "end", self.start + 1, INT64_MAX, RegistryError)


Change = GatewayRegistration | BoxRegistration | Attachment
"""One registry change: a type per op (module docstring)."""

TYPES: Final[dict[str, type[Change]]] = {
    kind.OP: kind for kind in (GatewayRegistration, BoxRegistration, Attachment)
}
OPS: Final[dict[str, tuple[str, ...]]] = {  # each op's fields, besides op and time
    op: tuple(f.name for f in dataclasses.fields(kind) if f.name != "time")
    for op, kind in TYPES.items()
}
OPTIONAL: Final = frozenset(  # fields a request may leave out: label "", end null
    f.name
    for kind in TYPES.values()
    for f in dataclasses.fields(kind)
    if f.default is not dataclasses.MISSING
)


def parse_change(fields: object) -> Change:
    """Read a change from its decoded JSON: the type its op names, every field checked.
    Raises RegistryError naming the bad field."""
    if not isinstance(fields, dict):
        raise RegistryError("change", "want a JSON object")
    op = fields.get("op")
    if not isinstance(op, str) or op not in OPS:  # (a list is no dict key: test it first)
        raise RegistryError("op", f"got {op!r}, want one of {sorted(OPS)}")
    allowed = {"op", "time", *OPS[op]}
    if extra := set(fields) - allowed:
        raise RegistryError("change", f"unknown fields {sorted(extra)} for op {op}")
    if missing := allowed - set(fields) - OPTIONAL:
        raise RegistryError("change", f"missing fields {sorted(missing)} for op {op}")
    key = hex_field(fields["key"], "key", 32, RegistryError)
    values = {name: fields[name] for name in OPS[op][1:] if name in fields}
    return TYPES[op](key, fields["time"], **values)


def sign_request(owner_secret: bytes, change: Change) -> dict[str, Any]:
    """Return the JSON request carrying `change` signed by the owner's secret key."""
    return signed_change.sign_request(TAG, owner_secret, change)


def open_request(
    request: object, owners: Collection[bytes] | None = None, now: float | None = None
) -> tuple[Change, bytes]:
    """Check a signed request; return the change and its log entry. Raises RegistryError:
    400 for a malformed request, 403 for a bad signature or an owner not in `owners` (None:
    the caller checks authority itself, as the stores do in the appending transaction),
    400 "time" for a stale or future request."""
    change, owner, signature = signed_change.open_request(
        request, TAG, parse_change, RegistryError, now
    )
    if owners is not None and owner not in owners:
        raise RegistryError("unknown owner", f"key {owner.hex()} is not an owner", 403)
    return change, bytes([ENTRY_REGISTRY]) + owner + signature + change.canonical()


def parse_entry(payload: bytes) -> tuple[bytes, bytes, Change]:
    """Return (owner, signature, change) of a registry log entry's payload (kind byte
    removed), checking the owner's signature. Raises RegistryError."""
    return signed_change.read_entry(payload, TAG, parse_change, RegistryError)

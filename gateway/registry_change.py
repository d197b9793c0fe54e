"""Registry changes: gateways, boxes and their attachments, each a request signed by an
owner key and kept in the log, so auditors can see who registered what, and when. The
format lives here, upstream of the cloud, because gateways follow the cloud's registry
(gateway/registry_follow.py); gateway/registry_change.py re-exports it.

A request travels as JSON:

    {"change": {"op": "gateway", "key": "<hex>", "site": "w1", "time": 1767225600},
     "owner": "<hex x-only key>", "signature": "<hex BIP-340>"}

    op "gateway"  key, site                 register (or move) a gateway
    op "box"      key, site, label          register (or relabel) a sensor box
    op "attach"   key, subject, start, end  attach a box to a lot, shipment or zone for
                                            [start, end) Unix seconds (end null: open)

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

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from gateway import signed_change
from gateway.refusal import INT64_MAX, Refused, hex_field, int_field

ENTRY_REGISTRY = 0x02  # the log entry kind (cloud/log/kinds.py's table)
TAG = b"PharmaSync/registry/v1"
MAX_SKEW = signed_change.MAX_SKEW  # seconds between the request's time and the cloud's clock
OPS = {
    "gateway": ("key", "site"),
    "box": ("key", "site", "label"),
    "attach": ("key", "subject", "start", "end"),
}
MAX_TEXT = 200  # characters in a site, label or subject
MAX_REQUEST_BYTES = signed_change.MAX_REQUEST_BYTES  # a request's JSON: under 2 KiB here
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1: PostgreSQL stores no NUL


class RegistryError(Refused, ValueError):
    """A refused registry request: `reason` names the check, `status` the HTTP status."""


@dataclass(frozen=True, slots=True)
class Change:
    """One registry change (module docstring); fields an op does not use stay None."""

    op: str
    key: bytes
    time: int
    site: str | None = None
    label: str | None = None
    subject: str | None = None
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise RegistryError("op", f"got {self.op!r}, want one of {sorted(OPS)}")
        if len(self.key) != 32:
            raise RegistryError("key", f"got {len(self.key)} bytes, want a 32-byte x-only key")
        for name in ("site", "label", "subject"):
            value = getattr(self, name)
            used = name in OPS[self.op]
            if used and not isinstance(value, str):
                raise RegistryError(name, f"op {self.op} needs a string {name}")
            if used and (len(value) > MAX_TEXT or (name != "label" and not value)):
                raise RegistryError(name, f"got {len(value)} characters, want 1 to {MAX_TEXT}")
            if used and (bad := _CONTROL.search(value)):
                raise RegistryError(
                    name, f"got control character {bad.group()!r}, want printable text"
                )
        int_field(self.time, "time", 0, INT64_MAX, RegistryError)
        if self.op == "attach":
            start = int_field(self.start, "start", 0, INT64_MAX, RegistryError)
            if self.end is not None:
                int_field(self.end, "end", start + 1, INT64_MAX, RegistryError)

    def canonical(self) -> bytes:
        """The bytes the owner signs: the change's JSON, sorted keys, no spaces."""
        fields: dict[str, Any] = {"op": self.op, "key": self.key.hex(), "time": self.time}
        fields.update({name: asdict(self)[name] for name in OPS[self.op] if name != "key"})
        return signed_change.canonical_json(fields)

    @classmethod
    def from_json(cls, fields: object) -> Change:
        """Read a change from its decoded JSON. Raises RegistryError naming the bad field."""
        if not isinstance(fields, dict):
            raise RegistryError("change", "want a JSON object")
        op = fields.get("op")
        if op not in OPS:
            raise RegistryError("op", f"got {op!r}, want one of {sorted(OPS)}")
        allowed = {"op", "time", *OPS[op]}
        if extra := set(fields) - allowed:
            raise RegistryError("change", f"unknown fields {sorted(extra)} for op {op}")
        if missing := allowed - set(fields) - {"end", "label"}:
            raise RegistryError("change", f"missing fields {sorted(missing)} for op {op}")
        key = hex_field(fields.get("key"), "key", 32, RegistryError)
        values = {k: v for k, v in fields.items() if k not in ("op", "key", "time")}
        if op == "box":
            values.setdefault("label", "")
        return cls(op, key, fields["time"], **values)


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
        request, TAG, Change.from_json, RegistryError, now
    )
    if owners is not None and owner not in owners:
        raise RegistryError("unknown owner", f"key {owner.hex()} is not an owner", 403)
    return change, bytes([ENTRY_REGISTRY]) + owner + signature + change.canonical()


def parse_entry(payload: bytes) -> tuple[bytes, bytes, Change]:
    """Return (owner, signature, change) of a registry log entry's payload (kind byte
    removed), checking the owner's signature. Raises RegistryError."""
    return signed_change.read_entry(payload, TAG, Change.from_json, RegistryError)

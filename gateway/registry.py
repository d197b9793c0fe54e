"""The gateway's box registry: which boxes it accepts readings from, and what each one is
attached to (lot, zone, alarm profile). A small human-edited document, so TinyDB (JSON on
disk, editable by staff, later synced from the cloud); the spool never lives here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from device import topics


class RegistryError(ValueError):
    """A registry entry is invalid; str() names the field."""


@dataclass(frozen=True)
class Box:
    """A registered sensor box."""

    key: bytes  # BIP-340 x-only public key
    label: str = ""
    site: str = ""
    zone: str = ""  # cold room / zone the box watches: alarms are per zone
    lot: str = ""  # lot or shipment the box is attached to, if any
    ble_address: str = ""  # connect over BLE to this address (empty: MQTT only)
    profile: str = "default"  # alarm profile name

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != 32:
            raise RegistryError(f"key: got {self.key!r}, want 32 bytes")

    @property
    def device_id(self) -> str:
        return topics.device_id(self.key)

    @property
    def alarm_zone(self) -> str:
        """The zone alarms are raised for: the box's zone, or the box itself."""
        return self.zone or self.device_id

    def to_doc(self) -> dict[str, Any]:
        return asdict(self) | {"key": self.key.hex()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Box:
        try:
            key = bytes.fromhex(doc["key"])
        except (KeyError, TypeError, ValueError):
            raise RegistryError(f"key: got {doc.get('key')!r}, want 64 hex characters") from None
        return cls(key=key, **{k: str(v) for k, v in doc.items() if k != "key"})


class Registry:
    """Registered boxes, by key; reads are served from memory, writes go to disk first."""

    def __init__(self, path: Path) -> None:
        self.db = TinyDB(path, indent=2)
        self._boxes = {b.key: b for b in (Box.from_doc(d) for d in self.db.all())}

    def get(self, key: bytes) -> Box | None:
        return self._boxes.get(key)

    def all(self) -> list[Box]:
        return sorted(self._boxes.values(), key=lambda b: (b.zone, b.label, b.key))

    def put(self, box: Box) -> None:
        """Add or replace a box (by key)."""
        self.db.upsert(box.to_doc(), Query().key == box.key.hex())
        self._boxes[box.key] = box

    def remove(self, key: bytes) -> bool:
        removed = self.db.remove(Query().key == key.hex())
        self._boxes.pop(key, None)
        return bool(removed)

    def close(self) -> None:
        self.db.close()

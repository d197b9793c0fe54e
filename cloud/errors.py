"""The one shape of a refusal in the cloud: which check failed (`reason`, the problem+json
`reason` clients script against), what exactly (`detail`), and the HTTP status it deserves.
Domain modules raise their own subclasses; only the views turn them into responses."""

from __future__ import annotations


class Refused(Exception):
    """A request the ledger refuses, and why."""

    def __init__(self, reason: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status


def hex_field(value: object, name: str, size: int, error: type[Refused] = Refused) -> bytes:
    """Return `value`, a hex string, decoded: exactly `size` bytes. Raises `error` with
    reason `name` (400) for anything else: the cloud's one reading of keys and signatures
    given as hex, in paths, queries and JSON bodies alike."""
    if not isinstance(value, str):
        raise error(name, f"got {type(value).__name__}, want {size} bytes as hex")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise error(name, f"got {value[:80]!r}, want {size} bytes as hex") from None
    if len(data) != size:
        raise error(name, f"got {len(data)} bytes, want {size}")
    return data

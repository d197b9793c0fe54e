"""The one shape of a refusal: which check failed (`reason`, the problem+json `reason`
clients script against), what exactly (`detail`), and the HTTP status it deserves.
Domain modules raise their own subclasses; only the cloud's views turn them into
responses. It lives in gateway/ because formats the gateway reads too (registry and
configuration entries) raise it; gateway/refusal.py re-exports it."""

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


INT64_MAX = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint: signed 64 bits


def int_field(
    value: object,
    name: str,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    error: type[Refused] = Refused,
) -> int:
    """Return `value`, a JSON integer (not a bool), if minimum <= value <= maximum. Raises
    `error` with reason `name` (400) otherwise: the cloud's one range check of integers
    where they enter, so none that a database cannot hold ever reaches one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(name, f"got {type(value).__name__}, want an integer {minimum} to {maximum}")
    if not minimum <= value <= maximum:
        # (str() of an integer of over 4,300 digits raises ValueError: show its size)
        shown = str(value) if value.bit_length() <= 256 else f"{value.bit_length()}-bit integer"
        raise error(name, f"got {shown}, want an integer {minimum} to {maximum}")
    return value


def decimal_field(
    raw: str,
    name: str,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    error: type[Refused] = Refused,
) -> int:
    """Return `raw` (ASCII decimal digits, as in a path or query) as an int in [minimum,
    maximum]. Raises `error` with reason `name` (400) otherwise."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(maximum)):
        raise error(name, f"got {raw[:40]!r}, want an integer {minimum} to {maximum}")
    return int_field(int(raw), name, minimum, maximum, error)

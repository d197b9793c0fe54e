"""What storage raises: one definition each, for every engine and domain module."""

from __future__ import annotations


class NotFound(LookupError):
    """No such entry or node; str() names it."""


class SchemaError(RuntimeError):
    """The database holds a ledger of a schema this code cannot use; str() says what to do.
    (Raised when a store is opened: `cloud serve` should print it as one line.)"""


class StoreConflict(Exception):
    """A write lost a race or repeats one: `reason` is "conflict" (another header is stored
    for this (gateway, seq)), "chain" (the batch no longer follows the gateway's last one),
    "replayed" (the log holds this registry entry already), "event conflict" or "event
    gap" (cloud/storage/events.py); `detail` says what."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

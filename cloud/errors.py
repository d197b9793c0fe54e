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

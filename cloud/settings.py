"""The cloud service's settings: where it keeps its data, which database, the owners that
bootstrap its log, the contracts' regulators, the witnesses it asks, and its limits. Built
from `pharmasync cloud serve` options (cloud/commands.py); `make_app` (cloud/api/app.py)
builds the service from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device import reading
from gateway import batch

DEFAULT_PORT = 8480  # the gateway's status page has 8470
DEFAULT_ORIGIN = "pharmasync.local/ledger"
# The largest upload the batch API takes: a batch of 65,536 readings (gateways seal 1,024).
MAX_BATCH_READINGS = 65_536
MAX_BODY = batch.SIZE + MAX_BATCH_READINGS * reading.SIZE


@dataclass(frozen=True)
class CloudSettings:
    """What `make_app` needs to know (defaults suit one machine and the demo)."""

    data_dir: Path
    database: str | None = None  # postgresql://... ; None: SQLite in data_dir/ledger.sqlite
    origin: str = DEFAULT_ORIGIN  # the log's name in its checkpoints, for a new log key
    owners: tuple[bytes, ...] = ()  # x-only owner keys: bootstrap only, then the log's (0x06)
    # x-only keys of the contracts' regulators (docs/contracts.md §3): the bootstrap of the
    # log's 0x06 "regulator" entry, written when the log names none; then the log wins
    regulators: tuple[bytes, ...] = ()
    witnesses: tuple[str, ...] = ()  # URL=VKEY of witnesses asked to cosign checkpoints
    max_body: int = MAX_BODY  # bytes
    verify_threads: int = 2  # threads re-verifying batches off the event loop

    @property
    def key_file(self) -> Path:
        """The log's signing key (created on first start; keep it secret and backed up)."""
        return self.data_dir / "log.skey"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    def __post_init__(self) -> None:
        for key in self.owners:
            if len(key) != 32:
                raise ValueError(f"owner key: got {len(key)} bytes, want 32 (x-only, hex)")
        for key in self.regulators:
            if len(key) != 32:
                raise ValueError(f"regulator key: got {len(key)} bytes, want 32 (x-only)")
        if self.database is not None and not self.database.startswith(
            ("postgres://", "postgresql://")
        ):
            raise ValueError(f"database: got {self.database!r}, want a postgresql:// URL")
        if self.max_body < batch.SIZE:
            raise ValueError(f"max_body: got {self.max_body}, want >= {batch.SIZE}")

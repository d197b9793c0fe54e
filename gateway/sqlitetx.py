"""A SQLite write transaction, shared by the gateway's spool (gateway/spool.py) and the
cloud ledger's SQLite engine (cloud/storage/sqlite.py)."""

from __future__ import annotations

import sqlite3


class Immediate:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: a write transaction that takes
    SQLite's write lock at once, so its reads see the last commit and no other writer
    can come between them and its writes. The connection must be in autocommit mode
    (isolation_level=None)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")

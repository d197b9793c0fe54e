"""The engine layer: a database connection in a transaction, whatever the database.

Everything the ledger stores is written once, in the domain modules of this folder
(`log.py`, `batches.py`, `registry.py`, `authority.py`, `events.py`, `cosigned.py`,
`alarm_acks.py`), over this small interface; an engine (`sqlite.py`, `postgres.py`) only
opens its database, creates or checks its schema and runs statements:

- `read()` gives a `Tx` for reads. Each statement sees what was committed before it.
- `write()` gives a `Tx` in one transaction that holds the log's write lock: its holder is
  the log's single sequencer (DESIGN.md, "When one machine is not enough"). SQLite: BEGIN
  IMMEDIATE; PostgreSQL: pg_advisory_xact_lock. Leaving the block commits; an exception
  rolls everything back, and propagates.

One SQL dialect: `?` placeholders (PostgreSQL's engine numbers them `$1, $2, ...`), and
only what both databases accept: RETURNING on a single-row insert only, no unnest, no
LATERAL; bytes are BLOB / bytea, integers fit a signed 64 bits. A statement that binds an
untyped parameter where PostgreSQL cannot infer its type (a VALUES list, a SELECT list)
casts it: `CAST(? AS BIGINT)` reads the same in both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]

# Bound parameters per statement, under SQLite's limit (32,766 since 3.32; 999 before) and
# PostgreSQL's (32,767). Statements with more split their rows into parts of this many.
MAX_PARAMS = 500


class Tx(Protocol):
    """A connection inside a transaction (write()) or between them (read())."""

    # The column that orders a table's rows as they were inserted, for tables without a
    # key of their own: SQLite's rowid, PostgreSQL's identity column `id`. (The one
    # spelling the two schemas do not share.)
    row_order: str

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters (nothing for no rows)."""
        ...

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return its rows as tuples."""
        ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        """Run a query; return its first row, None if it has none."""
        ...

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run a query; return the first column of its first row, None if it has none."""
        ...


class Engine(Protocol):
    """An open database with the ledger's schema (module docstring)."""

    def read(self) -> AbstractAsyncContextManager[Tx]: ...

    def write(self) -> AbstractAsyncContextManager[Tx]: ...

    async def close(self) -> None: ...


def parts(items: Sequence[Any], per: int) -> Iterator[Sequence[Any]]:
    """Split `items` into parts whose statements bind at most MAX_PARAMS parameters,
    `per` parameters per item."""
    size = max(1, MAX_PARAMS // per)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def values(rows: int, *types: str) -> str:
    """`VALUES (CAST(? AS t1), CAST(? AS t2)), ...` for `rows` rows: a table of bound values
    both databases read with the types given (PostgreSQL cannot infer them in VALUES).
    Types must be spelled alike in both: SMALLINT, INTEGER, BIGINT."""
    row = "(" + ", ".join(f"CAST(? AS {t})" for t in types) + ")"
    return "VALUES " + ", ".join([row] * rows)


def marks(n: int) -> str:
    """`?, ?, ...`: n placeholders, for an IN list."""
    return ", ".join("?" * n)

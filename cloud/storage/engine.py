"""The engine layer: a database connection in a transaction, whatever the database.

Everything the ledger stores is written once, in the domain modules of this folder
(`log.py`, `batches.py`, `registry.py`, `authority.py`, `events.py`, `cosigned.py`,
`alarm_acks.py`), over this small interface; an engine (`sqlite.py`, `postgres.py`) only
opens its database, creates or checks its schema and runs statements:

- `read(fn)` runs `await fn(tx)` for reads and returns its result. Each statement sees
  what was committed before it.
- `write(fn)` runs `await fn(tx)` in one transaction that holds the log's write lock: its
  holder is the log's single sequencer (DESIGN.md, "When one machine is not enough").
  SQLite: BEGIN IMMEDIATE; PostgreSQL: pg_advisory_xact_lock. When fn returns, the
  transaction commits; if it raises, everything rolls back and the exception propagates.

A function, not a `with` block: SQLite's engine runs the whole of fn on its own thread, in
one hop off the event loop (statements and the domain's hashing alike), as a block's body
on the loop could not. So fn must await nothing but `tx`: on SQLite anything else is a
RuntimeError.

One SQL dialect: `?` placeholders (PostgreSQL's engine numbers them `$1, $2, ...`), and
only what both databases accept: RETURNING on a single-row insert only, no unnest, no
LATERAL; bytes are BLOB / bytea, integers fit a signed 64 bits. A statement that binds an
untyped parameter where PostgreSQL cannot infer its type (a SELECT list) casts it:
`CAST(? AS BIGINT)` reads the same in both. A table of bound rows to join with is
`tx.table(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

Row = tuple[Any, ...]
T = TypeVar("T")


class Tx(Protocol):
    """A connection inside a transaction (write()) or between them (read())."""

    # The column that orders a table's rows as they were inserted, for tables without a
    # key of their own: SQLite's rowid, PostgreSQL's identity column `id`. (The one
    # spelling the two schemas do not share.)
    row_order: str
    # Bound parameters one statement may carry (SQLite's compile-time limit, PostgreSQL's
    # 32,767): parts() splits longer lists.
    max_params: int

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

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """A query of `rows` as a table, and the parameters it binds, for a join:
        `WITH k(a, b) AS (<query>) SELECT ... FROM k JOIN ...`. `types` are the columns'
        SQL types as SQLite spells them (SMALLINT, INTEGER, BIGINT, BLOB). SQLite:
        VALUES with a parameter per value; PostgreSQL: unnest of an array per column
        (the one construct written per engine: a join to a VALUES list is slow to plan
        there, and unnest does not exist in SQLite)."""
        ...


class Engine(Protocol):
    """An open database with the ledger's schema (module docstring)."""

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Return `await fn(tx)`, fn reading through tx."""
        ...

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Return `await fn(tx)`, run in one transaction holding the log's write lock:
        committed when fn returns, rolled back if it raises."""
        ...

    async def close(self) -> None: ...


def parts(tx: Tx, items: Sequence[Any], per: int) -> Iterator[Sequence[Any]]:
    """Split `items` into parts whose statements bind at most tx.max_params parameters,
    `per` parameters per item."""
    size = max(1, tx.max_params // per)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def marks(n: int) -> str:
    """`?, ?, ...`: n placeholders, for an IN list."""
    return ", ".join("?" * n)

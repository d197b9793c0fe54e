"""Storage of the ledger: `Store` (store.py) over an engine (SQLite, PostgreSQL), the
domain written once (docs/layout.md)."""

"""Storage of the ledger: one interface, SQLite and PostgreSQL engines."""

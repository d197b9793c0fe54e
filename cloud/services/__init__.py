"""The services: what the HTTP API does, without HTTP (the ledger, then the contracts)."""

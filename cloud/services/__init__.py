"""The services: what the HTTP API does, without HTTP, one job each (the ledger's now, the
contracts' next), over one Shared (shared.py): log.py, readings.py, batches.py (checks in
ingest.py), registry.py, config.py, events.py, alarm_acks.py, witnessing.py; refusals.py
holds the error type they raise and the counter they share."""

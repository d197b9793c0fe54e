"""PharmaSync edge gateway: Merkle trees, batch format, ingest, spool and uplink."""
